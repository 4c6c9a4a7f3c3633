"""The ``stages`` shape of the store on Redis: a sequential curriculum's keys and scripts.

Mixed into :class:`~curriculum_redis.store.redis.RedisStore`, so a stage namespace uses the store's one
connection, script loading, error mapping and retry. Every write is one script call: ``stage_init.lua``
stores the stages once, ``stage_record.lua`` applies a batch of episodes and decides advancement,
``stage_reset.lua`` moves to a stage.

Keys (all under the namespace's hash tag, readable in ``redis-cli``)::

    {cr:<ns>}:stage           hash  index, name, version, episodes, successes, score_sum (in the current
                                    stage), window_successes, recorded_episodes, stale_episodes,
                                    duplicate_batches, advancements, resets, entered_at, advanced_at,
                                    created_at, entered_server_at (Redis TIME; only when the current
                                    stage's stop condition reads ``seconds``)
    {cr:<ns>}:stage:window    list  the current stage's last W outcomes, newest first ("1" / "0")
    {cr:<ns>}:stage:config    hash  fingerprint, stages (JSON), num_stages, created_at and per stage i:
                                    "<i>:name", "<i>:advance_threshold", "<i>:window", "<i>:min_episodes",
                                    "<i>:program" (the compiled stop condition, JSON; only if it has one)
    {cr:<ns>}:stage:history   hash  per stage i: "<i>:episodes", "<i>:successes", "<i>:stale",
                                    "<i>:entered_at", "<i>:advanced_at", "<i>:advanced_after_episodes",
                                    "<i>:advanced_with_success_rate", "<i>:left_at" (after a reset)
    {cr:<ns>}:stage:clients   hash  client_id -> last applied seq (de-duplication of re-sent batches)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from curriculum_redis.algorithms.sequential import SequentialConfig
from curriculum_redis.config import AlgorithmConfig, parse_config
from curriculum_redis.errors import StoreError
from curriculum_redis.state import SCHEMA_VERSION, CurriculumState, StageTrack
from curriculum_redis.store.base import OutcomeBatch, RecordResult, StagePosition, StageState
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import MAX_STAGES

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

T = TypeVar("T")

log = logging.getLogger(__name__)


def is_stages(hypers: object) -> bool:
    """Whether ``hypers`` describe the ``stages`` shape (else the task pool)."""
    return isinstance(hypers, SequentialConfig)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now() -> str:
    return f"{time.time():.6f}"


class RedisStages:
    """The stage methods of :class:`~curriculum_redis.store.redis.RedisStore` (see the module docstring)."""

    if TYPE_CHECKING:
        _attached_hypers: Any

        @property
        def namespace(self) -> str: ...

        @property
        def client(self) -> Redis | RedisCluster: ...

        def _call(self, fn: Callable[[], T]) -> T: ...

        def _invoke(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any: ...

        def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any: ...

        def attach(self, hypers: Any) -> Any: ...

        def read_hypers(self) -> AlgorithmConfig | None: ...

    @property
    def stage_keys(self) -> NamespaceKeys:
        return NamespaceKeys(self.namespace)

    def _stages(self) -> SequentialConfig:
        """The attached stages, else the namespace's own (an admin or a reader attaches nothing)."""
        hypers = self._attached_hypers if self._attached_hypers is not None else self.read_hypers()
        if not isinstance(hypers, SequentialConfig):
            raise StoreError(f"namespace {self.namespace!r} holds no stage curriculum")
        return hypers

    def _attach_stages(self, hypers: SequentialConfig) -> AlgorithmConfig | None:
        """Store the stages (and the state at stage 0) unless stored, with the namespace's meta; the stored
        hyperparameters when they differ (other stages, or another algorithm)."""
        args: list[Any] = [hypers.fingerprint(), hypers.stages_json(), f"{time.time():.3f}", len(hypers.stages)]
        args += [SCHEMA_VERSION, hypers.algorithm, hypers.model_dump_json()]
        for stage in hypers.stages:
            args += [stage.name, repr(float(stage.advance_threshold)), stage.window, stage.min_episodes]
        for stage in hypers.stages:
            condition = stage.condition()
            args.append("" if condition is None else condition.to_json())
        keys = [*self.stage_keys.stage_all, self.stage_keys.meta]
        reply = self._call(lambda: self._invoke("stage_init", keys, args))
        self._attached_hypers = hypers
        if _str(reply[0]) != "mismatch":
            return None
        stages, meta_hypers = _str(reply[1]), _str(reply[2])
        try:
            if not stages:  # another algorithm runs the namespace
                return parse_config(meta_hypers)
            return SequentialConfig.model_validate({"stages": json.loads(stages), "seed": hypers.seed})
        except ValueError as exc:
            raise StoreError(f"namespace {self.namespace!r} holds unreadable stages: {stages[:200]!r}") from exc

    def _record_stages(self, batch: OutcomeBatch) -> RecordResult:
        if not batch.outcomes:
            return RecordResult(applied=True)
        args: list[Any] = [self._stages().fingerprint(), batch.client_id, batch.seq, _now(), len(batch.outcomes)]
        for outcome in batch.outcomes:
            args += [outcome.task_id % MAX_STAGES, "1" if outcome.success else "0", repr(float(outcome.score))]
        reply = self._run("stage_record", self.stage_keys.stage_all, args)
        applied, index, version, recorded, stale, advanced = (int(x) for x in reply)
        position = StagePosition(index, version)
        return RecordResult(bool(applied), recorded, stale=stale, advanced=advanced, stage=position)

    def read_stages(self) -> SequentialConfig | None:
        """The stored stages (None when the namespace holds none): the hyperparameters of a stage namespace
        whose meta holds none, so that it stays readable. Writes nothing."""
        raw = self._call(lambda: self.client.hget(self.stage_keys.stage_config, "stages"))
        return None if raw is None else SequentialConfig(stages=json.loads(_str(raw)))

    def stage_position(self) -> StagePosition:
        """One HMGET; a vanished state (a restart without persistence, a drop) is made again at stage 0."""

        def read() -> list[Any]:
            return self._call(lambda: list(self.client.hmget(self.stage_keys.stage, ["index", "version"])))

        raw = read()
        if raw[0] is None and is_stages(self._attached_hypers):
            log.warning("stage curriculum state of namespace %r is gone; restarting at stage 0", self.namespace)
            self.attach(self._attached_hypers)
            raw = read()
        if raw[0] is None or raw[1] is None:
            raise StoreError(f"namespace {self.namespace!r} holds no stage curriculum state")
        return StagePosition(int(raw[0]), int(raw[1]))

    def reset_stage(self, index: int) -> StagePosition:
        reply = self._run("stage_reset", self.stage_keys.stage_all, [self._stages().fingerprint(), index, _now()])
        return StagePosition(int(reply[0]), int(reply[1]))

    def _read_stage_keys(self) -> list[Any]:
        """The stage hash, window, history, clients and stored stages JSON, in one MULTI/EXEC."""
        keys = self.stage_keys
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(keys.stage)
        pipe.lrange(keys.stage_window, 0, -1)
        pipe.hgetall(keys.stage_history)
        pipe.hgetall(keys.stage_clients)
        pipe.hget(keys.stage_config, "stages")
        return self._call(pipe.execute)

    def _export_stages(self) -> CurriculumState:
        """The stage keys, read atomically, with the namespace's stages."""
        stage, window, history, clients, _ = self._read_stage_keys()
        track = StageTrack(
            stage={_str(k): _str(v) for k, v in stage.items()},
            window=[int(x) for x in window],
            history={_str(k): _str(v) for k, v in history.items()},
            clients={int(c): int(s) for c, s in clients.items()},
        )
        return CurriculumState(namespace=self.namespace, hypers=self._stages(), stage=track)

    def _import_stages(self, state: CurriculumState) -> None:
        """Replace the stage keys and meta by ``state``'s in one MULTI/EXEC, then store its stages' config."""
        keys, track = self.stage_keys, state.stage or StageTrack()
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*keys.stage_all, keys.meta)
        if track.stage:
            pipe.hset(keys.stage, mapping=cast(Mapping[Any, Any], track.stage))
        if track.window:
            pipe.rpush(keys.stage_window, *track.window)
        if track.history:
            pipe.hset(keys.stage_history, mapping=cast(Mapping[Any, Any], track.history))
        if track.clients:
            pipe.hset(keys.stage_clients, mapping={str(c): s for c, s in track.clients.items()})
        self._call(pipe.execute)
        self._attach_stages(self._of_state(state))

    def _of_state(self, state: CurriculumState) -> SequentialConfig:
        if not isinstance(state.hypers, SequentialConfig):
            raise StoreError(f"a state of the {state.hypers.algorithm} algorithm holds no stages")
        return state.hypers

    def stage_state(self) -> StageState:
        """Everything stored, read in one MULTI/EXEC transaction."""
        raw_stage, raw_window, raw_history, _, raw_stages = self._read_stage_keys()
        if not raw_stage or raw_stages is None:
            raise StoreError(f"namespace {self.namespace!r} holds no stage curriculum state")
        s = {_str(k): _str(v) for k, v in raw_stage.items()}
        stages = json.loads(_str(raw_stages))
        history: dict[int, dict[str, float]] = {}
        for k, v in raw_history.items():
            number, _, name = _str(k).partition(":")
            history.setdefault(int(number), {})[name] = float(v)
        index = int(s["index"])
        cfg = stages[index]
        return StageState(
            index=index,
            name=s["name"],
            version=int(s["version"]),
            num_stages=len(stages),
            episodes_in_stage=int(s["episodes"]),
            window=[_str(x) == "1" for x in reversed(raw_window)],
            window_size=int(cfg["window"]),
            window_successes=int(s["window_successes"]),
            advance_threshold=float(cfg["advance_threshold"]),
            min_episodes=int(cfg["min_episodes"]),
            recorded_episodes=int(s["recorded_episodes"]),
            stale_episodes=int(s["stale_episodes"]),
            duplicate_batches=int(s["duplicate_batches"]),
            advancements=int(s["advancements"]),
            resets=int(s["resets"]),
            entered_at=float(s["entered_at"]),
            advanced_at=float(s["advanced_at"]) if "advanced_at" in s else None,
            history=dict(sorted(history.items())),
            successes_in_stage=int(s.get("successes", 0)),
            score_sum=float(s.get("score_sum", 0.0)),
            entered_server_at=float(s["entered_server_at"]) if "entered_server_at" in s else None,
            stop_condition=cfg.get("stop_condition"),
        )
