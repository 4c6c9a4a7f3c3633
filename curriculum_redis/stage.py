"""A stage curriculum shared by every environment of every process: ordered stages, advanced on the
global success rate of the current stage, with the state in Redis and every write one Lua call.

How it stays right with any number of environments and processes:

- **One decision place.** ``lua/stage_record.lua`` records an episode, updates the window and decides
  advancement in the same atomic call, so two processes can never both advance the same stage and no
  episode is lost between a check and an update.
- **Episodes carry their stage.** Each episode is recorded for the stage it was *played in* (encoded in
  the task id, see :func:`stage_of_task`). An episode of an earlier (or later) stage that arrives after
  the stage changed is counted as stale and never enters the new stage's window.
- **Every reset reads the stage.** :meth:`StageCurriculum.get_task` reads the current stage from Redis
  (one ``HMGET``, ~0.1 ms on loopback, once per episode), so every environment runs the new stage from
  its next reset on. There is no cache to go stale; if Redis is unreachable the last stage read is used
  (with a warning) until it is back.
- **At most once.** Each write carries ``(client_id, seq)``; the script ignores a batch it has applied,
  so a command re-sent by redis-py after a lost reply is not counted twice. A batch that could not be
  sent stays pending (in order) and goes out with the next write or :meth:`StageCurriculum.flush`.

Redis keys (all under the namespace's hash tag, readable in ``redis-cli``)::

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
                                    "<i>:advanced_with_success_rate", "<i>:left_at" (after reset_to)
    {cr:<ns>}:stage:clients   hash  client_id -> last applied seq (de-duplication of re-sent writes)

A stage advances when, after an episode of that stage, ``episodes >= min_episodes``, the window holds
``window`` outcomes and ``successes / window >= advance_threshold``; or, for a stage with a
``stop_condition`` (e.g. ``"episodes>=500 & success>0.8"``, see :mod:`curriculum_redis.conditions`),
exactly when the condition holds, evaluated by the same script on the stored counts. The last stage never
advances.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import redis
import redis.exceptions
from redis.commands.core import Script

from curriculum_redis.errors import (
    ConfigError,
    CredentialsError,
    InvalidScoreError,
    ScriptError,
    StoreError,
    StoreUnavailableError,
)
from curriculum_redis.stage_config import MAX_STAGES, StageConfig, StageCurriculumConfig
from curriculum_redis.store.redis import Client, RedisStore
from curriculum_redis.store.scripts import script_sources
from curriculum_redis.tasks import MAX_TASK_ID, Task

__all__ = [
    "MAX_STAGES",
    "Stage",
    "StageConfig",
    "StageCurriculum",
    "StageCurriculumConfig",
    "StageKeys",
    "StageRecordResult",
    "StageState",
    "stage_of_task",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCAL_ID_LIMIT = (MAX_TASK_ID + 1) // MAX_STAGES
"""Local ids of generator stages are drawn from [1, LOCAL_ID_LIMIT): task ids stay below 2**53."""

MAX_PENDING_BATCHES = 100_000
"""Writes kept while Redis is unreachable; past that the oldest are dropped (counted, warned about)."""

_BAD_NAMESPACE_CHARS = set("{}: \t\r\n*?[]")


def stage_of_task(task_id: int) -> int:
    """The index of the stage a task of a :class:`StageCurriculum` belongs to."""
    return task_id % MAX_STAGES


# ------------------------------------------------------------------------------------------ views


@dataclass(frozen=True)
class Stage:
    """The current stage as read from Redis."""

    index: int
    name: str
    version: int
    """Bumped at every advancement and every ``reset_to``."""
    config: StageConfig
    num_stages: int

    @property
    def is_final(self) -> bool:
        return self.index == self.num_stages - 1


@dataclass(frozen=True)
class StageRecordResult:
    """What one write did: the stage after it, and how many episodes were applied or stale."""

    applied: bool
    """False when the batch had been applied before (a re-sent write)."""
    index: int
    version: int
    recorded: int
    stale: int
    advanced: int


@dataclass(frozen=True)
class StageState:
    """The whole stored state of a stage curriculum, read in one transaction."""

    index: int
    name: str
    version: int
    num_stages: int
    episodes_in_stage: int
    window: list[bool]
    """The current stage's last outcomes, oldest first."""
    window_size: int
    window_successes: int
    advance_threshold: float
    min_episodes: int
    recorded_episodes: int
    stale_episodes: int
    duplicate_batches: int
    advancements: int
    resets: int
    entered_at: float
    advanced_at: float | None
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    """Per stage index: episodes, successes, stale, entered_at, advanced_at, ... (as stored)."""
    successes_in_stage: int = 0
    score_sum: float = 0.0
    """Sum of the scores of the current stage's episodes (a success counts 1.0 when recorded without score)."""
    entered_server_at: float | None = None
    """When the current stage was entered by the Redis server's clock (only if its condition reads seconds)."""
    stop_condition: str | None = None

    @property
    def window_success_rate(self) -> float:
        return self.window_successes / len(self.window) if self.window else 0.0

    @property
    def score_mean(self) -> float:
        return self.score_sum / self.episodes_in_stage if self.episodes_in_stage else 0.0

    def condition_values(self, server_time: float | None = None) -> dict[str, float]:
        """The variables of a stop condition, as ``lua/stage_record.lua`` computes them (``seconds`` from
        ``server_time``, e.g. ``redis.time()``; 0 when not given or not tracked)."""
        seconds = 0.0
        if server_time is not None and self.entered_server_at is not None:
            seconds = server_time - self.entered_server_at
        return {
            "episodes": float(self.episodes_in_stage),
            "successes": float(self.successes_in_stage),
            "success": self.window_success_rate,
            "window": float(len(self.window)),
            "score": self.score_mean,
            "seconds": seconds,
        }


# ------------------------------------------------------------------------------------------ keys


@dataclass(frozen=True)
class StageKeys:
    namespace: str

    @property
    def prefix(self) -> str:
        return "{cr:" + self.namespace + "}"

    @property
    def stage(self) -> str:
        return f"{self.prefix}:stage"

    @property
    def window(self) -> str:
        return f"{self.prefix}:stage:window"

    @property
    def config(self) -> str:
        return f"{self.prefix}:stage:config"

    @property
    def history(self) -> str:
        return f"{self.prefix}:stage:history"

    @property
    def clients(self) -> str:
        return f"{self.prefix}:stage:clients"

    @property
    def all(self) -> list[str]:
        """The KEYS of every stage script, in their order."""
        return [self.stage, self.window, self.config, self.history, self.clients]


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not 1 <= len(namespace) <= 128:
        raise ConfigError(f"namespace must be a string of 1 to 128 characters, got {namespace!r}")
    bad = set(namespace) & _BAD_NAMESPACE_CHARS
    if bad:
        raise ConfigError(
            f"namespace {namespace!r} contains {''.join(sorted(bad))!r}; use letters, digits, '-', '_', '.'"
        )
    return namespace


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ------------------------------------------------------------------------------------------ curriculum


class StageCurriculum:
    """Ordered stages shared through Redis. Duck-types the curriculum interface of
    :class:`~curriculum_redis.env.CurriculumEnv` (``get_task``, ``update_task_performance``, ``flush``).

    Args:
        config: the stages.
        connection: a ``redis://``, ``rediss://`` or ``unix://`` URL (``?cluster=true`` for a Redis Cluster,
            see :class:`~curriculum_redis.store.redis.StoreURL`), a ``redis.Redis`` or a
            ``redis.cluster.RedisCluster``.
        namespace: the curriculum's namespace (the ``{cr:<ns>}`` hash tag of its keys).

    The first process to attach stores the config and starts at stage 0; later processes must bring
    the same stages (same :meth:`StageCurriculumConfig.fingerprint`) or get a :class:`ConfigError`.
    Safe to pickle into worker processes: the config and how to connect cross, the connection is
    made lazily and again after ``fork()``.
    """

    def __init__(
        self, config: StageCurriculumConfig, connection: str | Client, namespace: str = "default"
    ) -> None:
        if not isinstance(config, StageCurriculumConfig):
            raise ConfigError(f"config must be a StageCurriculumConfig, got {type(config).__name__}")
        self.config = config
        self.namespace = check_namespace(namespace)
        if isinstance(connection, str):
            self._store = RedisStore.from_url(connection, namespace)
        elif isinstance(connection, (redis.Redis, redis.RedisCluster)):
            self._store = RedisStore(connection, namespace)
        else:
            raise ConfigError(
                f"connection must be a redis URL, a redis.Redis or a RedisCluster, got {type(connection).__name__}"
            )
        self._init_process_state()

    @classmethod
    def from_namespace(cls, connection: str | Client, namespace: str) -> StageCurriculum:
        """Attach to the stage curriculum stored in ``namespace``, with the config stored there (for
        inspection and administration by a process that does not have the config, like the CLI)."""
        probe = cls(StageCurriculumConfig(stages=[StageConfig(name="probe", env_cfg={})]), connection, namespace)
        try:
            raw = probe._call(lambda: probe._store.client.hget(probe.keys.config, "stages"))
        finally:
            probe.close()
        if raw is None:
            raise StoreError(f"namespace {namespace!r} holds no stage curriculum")
        config = StageCurriculumConfig(stages=json.loads(_text(raw)))
        return cls(config, connection, namespace)

    def _init_process_state(self) -> None:
        self.keys = StageKeys(self.namespace)
        self._fingerprint = self.config.fingerprint()
        self._pid = os.getpid()
        self._attached = False
        # Random, not a server counter: unique even if the state is wiped and created again.
        self._client_id = secrets.randbits(52) + 1
        self._seq = 0
        self._pending: deque[tuple[int, list[tuple[int, bool, float]]]] = deque()
        self._dropped = 0
        self._rng = np.random.default_rng([self.config.seed, self._client_id])
        self._last_stage: Stage | None = None
        self._scripts: dict[str, Script] = {}
        self._scripts_client: Client | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "namespace": self.namespace, "store": self._store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self.namespace = state["namespace"]
        self._store = state["store"]
        self._init_process_state()

    def _ensure_ready(self) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's client id, sequence and pending writes are the parent's.
            self._init_process_state()
        if not self._attached:
            self._attach()

    def _attach(self) -> None:
        now = f"{time.time():.3f}"
        args: list[Any] = [self._fingerprint, self.config.stages_json(), now, len(self.config.stages)]
        for stage in self.config.stages:
            args += [stage.name, repr(float(stage.advance_threshold)), stage.window, stage.min_episodes]
        for stage in self.config.stages:
            condition = stage.condition()
            args.append("" if condition is None else condition.to_json())
        reply = self._call(lambda: self._script("stage_init")(keys=self.keys.all, args=args))
        status = _text(reply[0])
        if status == "mismatch":
            raise ConfigError(self._mismatch_message(_text(reply[1])))
        self._attached = True

    def _mismatch_message(self, stored_json: str) -> str:
        where = f"namespace {self.namespace!r}"
        try:
            stored = json.loads(stored_json)
        except ValueError:
            return f"{where} holds another stage curriculum config (unreadable: {stored_json[:200]!r})"
        given = json.loads(self.config.stages_json())
        lines = []
        if len(stored) != len(given):
            lines.append(f"  number of stages: stored={len(stored)} given={len(given)}")
        for i, (a, b) in enumerate(zip(stored, given, strict=False)):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    lines.append(f"  stage {i} {name}: stored={a.get(name)!r} given={b.get(name)!r}")
        return (
            f"{where} holds a stage curriculum with other stages:\n"
            + "\n".join(lines)
            + "\nUse another namespace, or drop the stored one first."
        )

    def close(self) -> None:
        """Send pending writes (if Redis is reachable) and release the connection."""
        if self._attached and self._pid == os.getpid():
            self._flush_quietly()
        self._store.close()
        self._scripts = {}
        self._scripts_client = None

    def __enter__(self) -> StageCurriculum:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- redis plumbing --------------------------------------------------------------------------

    def _script(self, name: str) -> Script:
        client = self._store.client
        if client is not self._scripts_client:
            self._scripts = {}
            self._scripts_client = client
        script = self._scripts.get(name)
        if script is None:
            # Script.__call__ runs EVALSHA and loads the script again on NOSCRIPT.
            script = self._scripts[name] = client.register_script(script_sources()[name])
        return script

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.exceptions.AuthenticationError as exc:
            # The wording of RedisStore._call: a refusal, not an outage (it is a ConnectionError subclass).
            raise CredentialsError(self._store.where, exc) from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailableError(f"cannot reach {self._store.where}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            message = str(exc)
            if message.startswith("CR_"):
                raise ScriptError(message) from exc
            raise StoreError(f"{self._store.where} refused a command: {message}") from exc

    def _run(self, name: str, args: Sequence[Any]) -> Any:
        """Run a stage script; if the state vanished (a restart without persistence, a drop), store
        the config again (the curriculum restarts at stage 0) and retry once."""
        try:
            return self._call(lambda: self._script(name)(keys=self.keys.all, args=list(args)))
        except ScriptError as exc:
            if not str(exc).startswith("CR_NO_STAGE"):
                raise
            log.warning("stage curriculum state of namespace %r is gone; restarting at stage 0", self.namespace)
            self._attach()
            return self._call(lambda: self._script(name)(keys=self.keys.all, args=list(args)))

    # -- reads -----------------------------------------------------------------------------------

    def current_stage(self) -> Stage:
        """The current stage, read from Redis on every call (so a reset always sees the latest).
        If Redis is unreachable, the last stage read (a warning is logged); if none was read, raises
        :class:`StoreUnavailableError`."""
        self._ensure_ready()
        try:
            raw = self._call(lambda: self._store.client.hmget(self.keys.stage, ["index", "version"]))
            if raw[0] is None:
                log.warning("stage curriculum state of namespace %r is gone; restarting at stage 0", self.namespace)
                self._attach()
                raw = self._call(lambda: self._store.client.hmget(self.keys.stage, ["index", "version"]))
        except StoreUnavailableError as exc:
            if self._last_stage is None:
                raise
            log.warning("stage store unreachable, staying at stage %r: %s", self._last_stage.name, exc)
            return self._last_stage
        if raw[0] is None or raw[1] is None:
            raise StoreError(f"namespace {self.namespace!r}: the stage state is incomplete")
        stage = self._stage(int(raw[0]), int(raw[1]))
        self._last_stage = stage
        return stage

    def _stage(self, index: int, version: int) -> Stage:
        if not 0 <= index < len(self.config.stages):
            raise StoreError(
                f"namespace {self.namespace!r} is at stage {index}, this config has {len(self.config.stages)} stages"
            )
        cfg = self.config.stages[index]
        return Stage(index, cfg.name, version, cfg, len(self.config.stages))

    def get_task(self) -> Task:
        """A task of the current stage (read from Redis). Its id encodes the stage index."""
        if self._pending:
            self._flush_quietly()
        stage = self.current_stage()
        cfg = stage.config
        if cfg.task_generator is None:
            return Task(MAX_STAGES + stage.index, cfg.name, copy.deepcopy(cfg.env_cfg or {}))
        local_id = int(self._rng.integers(1, LOCAL_ID_LIMIT))
        task = cfg.task_generator.get_task(local_id * MAX_STAGES + stage.index)
        return Task(task.task_id, f"{cfg.name}/{task.label}", task.env_cfg)

    def state(self) -> StageState:
        """Everything stored, read in one MULTI/EXEC transaction."""
        self._ensure_ready()
        pipe = self._store.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.stage)
        pipe.lrange(self.keys.window, 0, -1)
        pipe.hgetall(self.keys.history)
        raw_stage, raw_window, raw_history = self._call(pipe.execute)
        if not raw_stage:
            raise StoreError(f"namespace {self.namespace!r} holds no stage curriculum state")
        s = {_text(k): _text(v) for k, v in raw_stage.items()}
        history: dict[int, dict[str, float]] = {}
        for k, v in raw_history.items():
            number, _, name = _text(k).partition(":")
            history.setdefault(int(number), {})[name] = float(v)
        index = int(s["index"])
        cfg = self._stage(index, 0).config
        return StageState(
            index=index,
            name=s["name"],
            version=int(s["version"]),
            num_stages=len(self.config.stages),
            episodes_in_stage=int(s["episodes"]),
            window=[_text(x) == "1" for x in reversed(raw_window)],
            window_size=cfg.window,
            window_successes=int(s["window_successes"]),
            advance_threshold=cfg.advance_threshold,
            min_episodes=cfg.min_episodes,
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
            stop_condition=cfg.stop_condition,
        )

    def stats(self) -> dict[str, float]:
        """Flat statistics (ready for wandb/tensorboard), from a fresh read."""
        self._flush_quietly()
        st = self.state()
        n = st.num_stages
        out = {
            "stage/index": float(st.index),
            "stage/version": float(st.version),
            "stage/num_stages": float(n),
            "stage/progress": float(st.index / (n - 1)) if n > 1 else 1.0,
            "stage/episodes_in_stage": float(st.episodes_in_stage),
            "stage/window_fill": float(len(st.window)),
            "stage/window_size": float(st.window_size),
            "stage/window_success_rate": st.window_success_rate,
            "stage/successes_in_stage": float(st.successes_in_stage),
            "stage/score_mean": st.score_mean,
            "stage/advance_threshold": st.advance_threshold,
            "stage/recorded_episodes": float(st.recorded_episodes),
            "stage/stale_episodes": float(st.stale_episodes),
            "stage/duplicate_batches": float(st.duplicate_batches),
            "stage/advancements": float(st.advancements),
            "stage/resets": float(st.resets),
            "stage/pending_episodes_local": float(self.pending_episodes),
            "stage/dropped_episodes_local": float(self._dropped),
        }
        for i, stage in enumerate(self.config.stages):
            h = st.history.get(i, {})
            episodes, successes = h.get("episodes", 0.0), h.get("successes", 0.0)
            out[f"stage/{stage.name}/episodes"] = episodes
            out[f"stage/{stage.name}/successes"] = successes
            out[f"stage/{stage.name}/success_rate"] = successes / episodes if episodes else 0.0
            out[f"stage/{stage.name}/stale"] = h.get("stale", 0.0)
        return out

    # -- writes ----------------------------------------------------------------------------------

    def update_task_performance(self, task_id: int, score: float) -> None:
        """Report the score of an episode of task ``task_id`` (from :meth:`get_task`): a success when
        ``score >= success_threshold`` of the task's stage. Written at once; if Redis is unreachable
        the episode stays pending (a warning is logged) and is sent with the next write."""
        index = self._task_stage(task_id)
        value = self._check_score(score)
        success = value >= self.config.stages[index].success_threshold
        try:
            self._record([(index, success, value)])
        except StoreUnavailableError as exc:
            log.warning("stage store unreachable, %d episodes pending: %s", self.pending_episodes, exc)

    def record_episode(self, stage_index: int, success: bool) -> int:
        """Record one episode played in stage ``stage_index``; returns the current stage index.
        Raises :class:`StoreUnavailableError` if Redis is unreachable (the episode stays pending)."""
        return self.record_episodes([(stage_index, success)]).index

    def record_episodes(self, episodes: Sequence[tuple[int, bool] | tuple[int, bool, float]]) -> StageRecordResult:
        """Record episodes ``(stage_index, success)`` or ``(stage_index, success, score)`` in order, in one
        atomic call. The score feeds a stop condition's ``score``; without one it is 1.0 for a success
        and 0.0 for a failure."""
        if isinstance(episodes, str | bytes) or not isinstance(episodes, Sequence) or not episodes:
            raise ConfigError("episodes must be a non-empty sequence of (stage_index, success) pairs")
        checked = []
        for item in episodes:
            if not isinstance(item, tuple | list) or len(item) not in (2, 3):
                raise ConfigError(
                    "an episode is a (stage_index, success) pair or a (stage_index, success, score) triple, "
                    f"got {item!r}"
                )
            success = self._check_success(item[1])
            score = self._check_score(item[2]) if len(item) == 3 else (1.0 if success else 0.0)
            checked.append((self._check_index(item[0]), success, score))
        return self._record(checked)

    def reset_to(self, stage_index: int) -> int:
        """Admin: go to stage ``stage_index`` with an empty window (version bumped). Episodes played in
        other stages and recorded afterwards are stale. Returns the index."""
        index = self._check_index(stage_index)
        self._ensure_ready()
        self._flush_quietly()
        reply = self._run("stage_reset", [self._fingerprint, index, f"{time.time():.6f}"])
        self._last_stage = self._stage(int(reply[0]), int(reply[1]))
        return self._last_stage.index

    def flush(self) -> None:
        """Send the writes still pending (kept while Redis was unreachable). Raises
        :class:`StoreUnavailableError` if it still is."""
        self._ensure_ready()
        self._drain()

    @property
    def pending_episodes(self) -> int:
        return sum(len(batch) for _, batch in self._pending)

    @property
    def dropped_episodes(self) -> int:
        """Episodes dropped because Redis was unreachable for longer than the pending queue holds."""
        return self._dropped

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except StoreUnavailableError as exc:
            log.warning("stage store unreachable, %d episodes pending: %s", self.pending_episodes, exc)

    def _record(self, episodes: list[tuple[int, bool, float]]) -> StageRecordResult:
        self._ensure_ready()
        self._seq += 1
        self._pending.append((self._seq, episodes))
        while len(self._pending) > MAX_PENDING_BATCHES:
            _, lost = self._pending.popleft()
            self._dropped += len(lost)
            log.warning("stage store unreachable too long: dropped %d episodes (%d so far)", len(lost), self._dropped)
        result = self._drain()
        assert result is not None
        return result

    def _drain(self) -> StageRecordResult | None:
        result = None
        while self._pending:
            seq, episodes = self._pending[0]
            args: list[Any] = [self._fingerprint, self._client_id, seq, f"{time.time():.6f}", len(episodes)]
            for index, success, score in episodes:
                args += [index, "1" if success else "0", repr(score)]
            try:
                reply = self._run("stage_record", args)
            except ScriptError:
                self._pending.popleft()  # refused before any write: re-sending cannot help
                raise
            self._pending.popleft()
            applied, index, version, recorded, stale, advanced = (int(x) for x in reply)
            result = StageRecordResult(bool(applied), index, version, recorded, stale, advanced)
            if advanced:
                log.info("stage curriculum %r advanced to stage %d", self.namespace, index)
            self._last_stage = self._stage(index, version)
        return result

    # -- validation ------------------------------------------------------------------------------

    def _check_index(self, stage_index: Any) -> int:
        if isinstance(stage_index, bool) or not isinstance(stage_index, int | np.integer):
            raise ConfigError(f"stage_index must be an int, got {type(stage_index).__name__} {stage_index!r}")
        index = int(stage_index)
        if not 0 <= index < len(self.config.stages):
            raise ConfigError(f"stage_index {index} is not a stage (0..{len(self.config.stages) - 1})")
        return index

    @staticmethod
    def _check_success(success: Any) -> bool:
        if not isinstance(success, bool | np.bool_):
            raise ConfigError(f"success must be a bool, got {type(success).__name__} {success!r}")
        return bool(success)

    def _task_stage(self, task_id: Any) -> int:
        if isinstance(task_id, bool) or not isinstance(task_id, int | np.integer):
            raise ConfigError(f"task_id must be an int, got {type(task_id).__name__} {task_id!r}")
        task_id = int(task_id)
        if not MAX_STAGES <= task_id <= MAX_TASK_ID or stage_of_task(task_id) >= len(self.config.stages):
            raise ConfigError(f"task_id {task_id} is not a task of this stage curriculum")
        return stage_of_task(task_id)

    @staticmethod
    def _check_score(score: Any) -> float:
        if isinstance(score, bool) or not isinstance(score, int | float | np.floating | np.integer):
            raise InvalidScoreError(f"score must be a real number, got {type(score).__name__} {score!r}")
        value = float(score)
        if not math.isfinite(value):
            raise InvalidScoreError(f"score must be finite, got {value!r}")
        return value
