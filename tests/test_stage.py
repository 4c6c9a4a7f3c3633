"""The sequential curriculum through StageCurriculum: atomic advancement (in Lua, and its Python mirror in
memory), stale episodes, many processes, bad input."""

from __future__ import annotations

import multiprocessing
import pickle
import random
import time
from collections import deque
from typing import Any

import gymnasium
import pydantic
import pytest
import redis
import redis.exceptions
from gymnasium import spaces

from curriculum_redis import (
    BucketedTaskGenerator,
    ConfigError,
    HyperparameterMismatchError,
    InvalidScoreError,
    ScriptError,
    StoreUnavailableError,
)
from curriculum_redis.algorithms.sequential import (
    SequentialConfig,
    StageConfig,
    StageCurriculumConfig,
    condition_values,
    stage_of_task,
)
from curriculum_redis.conditions import ConditionError, compile_condition, evaluate, program_from_json
from curriculum_redis.env import CurriculumEnv
from curriculum_redis.stage_curriculum import StageCurriculum
from curriculum_redis.store.base import StageState
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import MAX_STAGES
from curriculum_redis.store.scripts import script_sources

pytestmark = pytest.mark.redis


@pytest.fixture(params=["memory", "redis"])
def connection(request: pytest.FixtureRequest) -> str | None:
    """Where the core tests keep the state: in this process (None), or on a private Redis server."""
    return None if request.param == "memory" else str(request.getfixturevalue("redis_url"))


def values_of(st: StageState) -> dict[str, float]:
    """The stop-condition variables of a stored state (``seconds`` left at 0)."""
    return condition_values(st.episodes_in_stage, st.successes_in_stage, len(st.window), st.window_successes,
                            st.score_sum, 0.0)  # fmt: skip


def three_stages(window: int = 4, threshold: float = 0.75, min_episodes: int = 6) -> StageCurriculumConfig:
    return StageCurriculumConfig(
        stages=[
            StageConfig(
                name=name,
                env_cfg={"target": target},
                advance_threshold=threshold,
                window=window,
                min_episodes=min_episodes,
            )
            for target, name in enumerate(["easy", "medium", "hard"])
        ]
    )


def dump(client: redis.Redis, namespace: str) -> dict[bytes, bytes | None]:
    """Every key of the namespace with its serialised value."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(match="{cr:" + namespace + "}:*"))}


# ------------------------------------------------------------------------------------------ config


def test_config_json_round_trip() -> None:
    config = StageCurriculumConfig(
        stages=[
            StageConfig(name="fixed", env_cfg={"target": 0, "nested": {"a": [1, 2]}}, advance_threshold=0.6),
            StageConfig(
                name="generated",
                task_generator=BucketedTaskGenerator(buckets={"target": [1, 2]}),
                window=10,
                min_episodes=20,
                success_threshold=0.9,
            ),
        ],
        seed=3,
    )
    again = StageCurriculumConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert again.fingerprint() == config.fingerprint()
    assert isinstance(again.stages[1].task_generator, BucketedTaskGenerator)


@pytest.mark.parametrize(
    "data",
    [
        {"stages": [{"name": "a", "colour": "red"}]},  # unknown field
        {"stages": []},
        {"stages": [{"name": "a"}, {"name": "a"}]},  # duplicate names
        {"stages": [{"name": "a", "env_cfg": {}, "task_generator": {"kind": "single"}}]},  # both
        {"stages": [{"name": "a", "advance_threshold": 1.5}]},
        {"stages": [{"name": "a", "window": 0}]},
        {"stages": [{"name": "a", "success_threshold": float("nan")}]},
        {"stages": [{"name": ""}]},
    ],
)
def test_config_refuses_bad_values(data: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        StageCurriculumConfig.model_validate(data)


def test_fingerprint_ignores_seed_only() -> None:
    a = three_stages()
    assert a.fingerprint() == a.model_copy(update={"seed": 9}).fingerprint()
    assert a.fingerprint() != three_stages(threshold=0.5).fingerprint()


# ------------------------------------------------------------------------------------------ advancement


def test_advances_exactly_when_window_full_threshold_met_and_min_episodes_reached(connection: str | None) -> None:
    sc = StageCurriculum(three_stages(window=4, threshold=0.75, min_episodes=6), connection, "exact")
    # episode:  1  2  3  4 (window full, rate 1, but 4 < 6)  5 (.75, 5 < 6)  6 (.5)  7 (.5)  8 (.5)  9 (.75)
    outcomes = [True, True, True, True, False, False, True, True, True]
    indices = [sc.record_episode(0, success) for success in outcomes]
    assert indices == [0] * 8 + [1]
    st = sc.state()
    assert (st.index, st.name, st.version, st.advancements) == (1, "medium", 1, 1)
    assert st.episodes_in_stage == 0 and st.window == [] and st.window_successes == 0
    assert st.history[0]["episodes"] == 9 and st.history[0]["successes"] == 7
    assert st.history[0]["advanced_after_episodes"] == 9
    assert st.history[0]["advanced_with_success_rate"] == 0.75
    assert "entered_at" in st.history[1]


def test_window_keeps_only_the_last_w_outcomes(connection: str | None) -> None:
    sc = StageCurriculum(three_stages(window=3, threshold=1.0, min_episodes=0), connection, "window")
    for success in [False, True, True, False, True]:
        assert sc.record_episode(0, success) == 0
    st = sc.state()
    assert st.window == [True, False, True]  # oldest first
    assert st.window_successes == 2 and st.episodes_in_stage == 5
    assert sc.record_episode(0, True) == 0  # window F, T, T
    assert sc.record_episode(0, True) == 1  # window T, T, T


def test_last_stage_never_advances(connection: str | None) -> None:
    sc = StageCurriculum(three_stages(window=2, threshold=0.5, min_episodes=0), connection, "last")
    assert sc.reset_to(2) == 2
    for _ in range(10):
        assert sc.record_episode(2, True) == 2
    st = sc.state()
    assert st.advancements == 0 and st.episodes_in_stage == 10 and st.window == [True, True]


class ReferenceModel:
    """The advancement rule, written plainly."""

    def __init__(self, config: StageCurriculumConfig) -> None:
        self.config = config
        self.index = self.version = self.episodes = self.stale = 0
        self.window: deque[bool] = deque()

    def record(self, index: int, success: bool) -> int:
        if index != self.index:
            self.stale += 1
            return self.index
        stage = self.config.stages[self.index]
        self.episodes += 1
        self.window.append(success)
        if len(self.window) > stage.window:
            self.window.popleft()
        if (
            self.index < len(self.config.stages) - 1
            and self.episodes >= stage.min_episodes
            and len(self.window) == stage.window
            and sum(self.window) / stage.window >= stage.advance_threshold
        ):
            self.index += 1
            self.version += 1
            self.episodes = 0
            self.window.clear()
        return self.index


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lua_matches_a_reference_model_on_random_episodes(connection: str | None, seed: int) -> None:
    rng = random.Random(seed)
    config = StageCurriculumConfig(
        stages=[
            StageConfig(
                name=f"s{i}",
                env_cfg={"target": i},
                advance_threshold=rng.choice([0.6, 0.7, 0.8, 1.0]),
                window=rng.choice([1, 3, 5, 10]),
                min_episodes=rng.choice([0, 4, 12]),
            )
            for i in range(5)
        ]
    )
    sc = StageCurriculum(config, connection, f"model{seed}")
    model = ReferenceModel(config)
    for _ in range(400):
        # Mostly the current stage; sometimes an older or another stage (stale); batches of 1 to 3.
        batch = []
        for _ in range(rng.randint(1, 3)):
            index = model.index if rng.random() < 0.85 else rng.randrange(len(config.stages))
            success = rng.random() < 0.75
            batch.append((index, success))
            model.record(index, success)
        result = sc.record_episodes(batch)
        assert (result.stage.index, result.stage.version) == (model.index, model.version)
    st = sc.state()
    assert st.window == list(model.window)
    assert st.episodes_in_stage == model.episodes
    assert st.stale_episodes == model.stale
    assert st.recorded_episodes == sum(h.get("episodes", 0) for h in st.history.values()) + model.stale


# ------------------------------------------------------------------------------------------ stale episodes


def test_episode_of_an_old_stage_is_stale_not_applied(connection: str | None) -> None:
    sc = StageCurriculum(three_stages(window=2, threshold=1.0, min_episodes=0), connection, "stale")
    old_task = sc.get_task()
    assert stage_of_task(old_task.task_id) == 0
    assert sc.record_episode(0, True) == 0
    assert sc.record_episode(0, True) == 1
    # An env that started an episode in stage 0 finishes it now: counted stale, stage 1 untouched.
    sc.update_task_performance(old_task.task_id, 1.0)
    result = sc.record_episodes([(0, True), (1, False)])
    assert (result.recorded, result.stale, result.stage.index) == (1, 1, 1)
    st = sc.state()
    assert st.stale_episodes == 2 and st.history[0]["stale"] == 2
    assert st.episodes_in_stage == 1 and st.window == [False]
    assert st.history[0]["episodes"] == 2


def test_advancement_inside_a_batch_makes_the_rest_of_it_stale(connection: str | None) -> None:
    sc = StageCurriculum(three_stages(window=2, threshold=1.0, min_episodes=0), connection, "batch")
    result = sc.record_episodes([(0, True), (0, True), (0, True), (1, True)])
    assert (result.stage.index, result.stage.version, result.recorded, result.stale, result.advanced) == (1, 1, 3, 1, 1)
    assert sc.state().window == [True]


def test_reset_to_bumps_the_version_and_makes_other_stages_stale(connection: str | None) -> None:
    sc = StageCurriculum(three_stages(window=2, threshold=1.0, min_episodes=0), connection, "reset")
    sc.record_episode(0, False)
    assert sc.reset_to(2) == 2
    st = sc.state()
    assert (st.index, st.name, st.version, st.resets, st.window, st.episodes_in_stage) == (2, "hard", 1, 1, [], 0)
    assert sc.record_episode(0, True) == 2
    assert sc.state().stale_episodes == 1


# ------------------------------------------------------------------------------------------ tasks


def test_get_task_and_update_task_performance(connection: str | None) -> None:
    config = StageCurriculumConfig(
        stages=[
            StageConfig(name="fixed", env_cfg={"target": 0}, window=1, advance_threshold=1.0, success_threshold=0.5),
            StageConfig(
                name="gen",
                task_generator=BucketedTaskGenerator(buckets={"target": [1, 2]}),
                window=2,
                advance_threshold=1.0,
                success_threshold=10.0,
            ),
            StageConfig(name="end"),
        ]
    )
    sc = StageCurriculum(config, connection, "tasks")
    task = sc.get_task()
    assert (task.task_id, task.label, task.env_cfg) == (MAX_STAGES, "fixed", {"target": 0})
    task.env_cfg["target"] = 99  # a copy: the config is untouched
    assert sc.get_task().env_cfg == {"target": 0}
    sc.update_task_performance(task.task_id, 0.4)  # below success_threshold 0.5
    assert sc.current_stage().index == 0
    sc.update_task_performance(task.task_id, 0.5)
    stage = sc.current_stage()
    assert (stage.index, stage.name, stage.version) == (1, "gen", 1)

    tasks = [sc.get_task() for _ in range(20)]
    assert all(stage_of_task(t.task_id) == 1 for t in tasks)
    assert {t.env_cfg["target"] for t in tasks} == {1, 2}
    assert all(t.label.startswith("gen/bucketed:target=") for t in tasks)
    again = config.stages[1].task_generator.get_task(tasks[0].task_id)  # type: ignore[union-attr]
    assert again.env_cfg == tasks[0].env_cfg  # deterministic from the task id
    sc.update_task_performance(tasks[0].task_id, 9.0)  # success_threshold of stage "gen" is 10
    sc.update_task_performance(tasks[1].task_id, 10)
    sc.update_task_performance(tasks[2].task_id, 12.5)
    assert sc.current_stage().index == 2
    stats = sc.stats()
    assert stats["stage/index"] == 2 and stats["stage/progress"] == 1.0
    assert stats["stage/gen/episodes"] == 3 and stats["stage/gen/successes"] == 2
    assert stats["stage/recorded_episodes"] == 5 and stats["stage/advancements"] == 2


def test_keys_are_readable(redis_url: str, redis_client: redis.Redis) -> None:
    sc = StageCurriculum(three_stages(), redis_url, "readable")
    sc.record_episode(0, True)
    keys = NamespaceKeys("readable")
    assert sorted(dump(redis_client, "readable")) == sorted(k.encode() for k in [*keys.stage_all, keys.meta])
    meta = redis_client.hgetall(keys.meta)
    assert meta[b"algorithm"] == b"sequential" and meta[b"schema_version"] == b"2"
    assert SequentialConfig.model_validate_json(meta[b"hypers"]) == three_stages()
    stage = redis_client.hgetall(keys.stage)
    assert stage[b"index"] == b"0" and stage[b"name"] == b"easy" and stage[b"episodes"] == b"1"
    assert redis_client.lrange(keys.stage_window, 0, -1) == [b"1"]
    config = redis_client.hgetall(keys.stage_config)
    assert config[b"1:name"] == b"medium" and config[b"0:advance_threshold"] == b"0.75"
    assert config[b"fingerprint"] == three_stages().fingerprint().encode()
    assert redis_client.hget(keys.stage_history, "0:episodes") == b"1"


# ------------------------------------------------------------------------------------------ processes


def _worker(curriculum: StageCurriculum, episodes: int, success_rate: float, seed: int, start: Any, out: Any) -> None:
    """Like a process running 3 envs in turn: each env reads the stage at its reset and records its episode,
    for the stage it was played in, two other episodes later (so advancements happen in between)."""
    rng = random.Random(seed)
    start.wait()
    envs = [curriculum.get_task() for _ in range(3)]
    successes = 0
    for i in range(episodes):
        task = envs[i % 3]
        success = rng.random() < success_rate
        successes += success
        curriculum.update_task_performance(task.task_id, 1.0 if success else 0.0)
        envs[i % 3] = curriculum.get_task()
    curriculum.close()
    out.put((episodes, successes))


def run_processes(curriculum: StageCurriculum, episodes: int, success_rate: float) -> tuple[int, int]:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(curriculum, episodes, success_rate, seed, start, out)) for seed in range(4)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return sum(r[0] for r in results), sum(r[1] for r in results)


@pytest.mark.slow
def test_four_processes_advance_each_stage_exactly_once(redis_url: str) -> None:
    config = three_stages(window=10, threshold=1.0, min_episodes=25)
    curriculum = StageCurriculum(config, redis_url, "procs")  # pickled into the spawned workers
    reported, _ = run_processes(curriculum, episodes=150, success_rate=1.0)
    st = curriculum.state()
    assert (st.index, st.version, st.advancements) == (2, 2, 1 + 1)
    # Every success counts until the stage advances: exactly min_episodes applied to stages 0 and 1,
    # and every later episode of theirs is stale. Nothing lost, nothing applied twice.
    assert st.history[0]["episodes"] == st.history[1]["episodes"] == 25
    assert st.recorded_episodes == reported == 600
    assert st.history[0].get("stale", 0) + st.history[1].get("stale", 0) == st.stale_episodes
    assert 25 + 25 + st.history[2]["episodes"] + st.stale_episodes == reported
    assert st.duplicate_batches == 0


@pytest.mark.slow
def test_four_processes_lose_no_episode_with_mixed_outcomes(redis_url: str) -> None:
    config = three_stages(window=20, threshold=0.7, min_episodes=30)
    curriculum = StageCurriculum(config, redis_url, "mixed")
    reported, successes = run_processes(curriculum, episodes=150, success_rate=0.8)
    st = curriculum.state()
    applied = sum(h.get("episodes", 0) for h in st.history.values())
    assert st.recorded_episodes == reported == applied + st.stale_episodes
    assert sum(h.get("successes", 0) for h in st.history.values()) <= successes
    assert st.advancements == st.version == st.index  # one advancement per stage reached, never two
    for i in range(st.index):
        assert st.history[i]["advanced_with_success_rate"] >= 0.7
        assert st.history[i]["advanced_after_episodes"] >= 30


class ReachTarget(gymnasium.Env[Any, Any]):
    """Guess the target: success and termination on a hit, truncation after 5 steps."""

    def __init__(self) -> None:
        self.observation_space = spaces.Discrete(6)
        self.action_space = spaces.Discrete(4)
        self.target = 0
        self.steps = 0

    def set_task(self, cfg: dict[str, Any]) -> None:
        self.target = int(cfg["target"])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.steps = 0
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        hit = int(action) == self.target
        truncated = not hit and self.steps >= 5
        return self.steps, float(hit), hit, truncated, {"is_success": hit}


def test_every_env_sees_the_new_stage_on_its_next_reset(redis_url: str) -> None:
    config = three_stages(window=2, threshold=1.0, min_episodes=0)
    envs = [
        CurriculumEnv(ReachTarget(), StageCurriculum(config, redis_url, "envs"), success_key="is_success")
        for _ in range(3)
    ]
    for env in envs:
        _, info = env.reset()
        assert info["task_label"] == "easy"
    leader, *others = envs
    for _ in range(2):
        _, _, terminated, _, info = leader.step(0)  # a hit: the target of "easy" is 0
        assert terminated and info["task_label"] == "easy"
        leader.reset()
    # The leader's own reset after the second success already runs the new stage; so do the others'.
    assert leader.unwrapped.target == 1  # type: ignore[attr-defined]
    _, _, terminated, _, _ = others[0].step(0)  # an episode started in stage "easy" ends now: stale
    assert terminated
    for env in others:
        _, info = env.reset()
        assert info["task_label"] == "medium"
        assert env.unwrapped.target == 1  # type: ignore[attr-defined]
    sc = StageCurriculum(config, redis_url, "envs")
    st = sc.state()
    assert (st.index, st.stale_episodes, st.episodes_in_stage) == (1, 1, 0)
    for env in envs:
        env.close()


def test_pickles_and_shares_the_state(redis_url: str) -> None:
    sc = StageCurriculum(three_stages(window=1, threshold=1.0, min_episodes=0), redis_url, "pickle")
    sc.record_episode(0, False)
    copy = pickle.loads(pickle.dumps(sc))
    assert copy.record_episode(0, True) == 1
    assert sc.current_stage().index == 1


def test_accepts_a_client_and_a_decoding_client(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        sc = StageCurriculum(three_stages(window=1, threshold=1.0, min_episodes=0), client, "client")
        assert sc.record_episode(0, True) == 1
        assert sc.state().name == "medium"
        assert pickle.loads(pickle.dumps(sc)).current_stage().index == 1
    finally:
        client.close()


def test_state_vanished_restarts_at_stage_zero(redis_url: str, redis_client: redis.Redis) -> None:
    sc = StageCurriculum(three_stages(window=1, threshold=1.0, min_episodes=0), redis_url, "gone")
    assert sc.record_episode(0, True) == 1
    redis_client.flushall()
    assert sc.current_stage().index == 0
    redis_client.flushall()
    assert sc.record_episode(0, True) == 1  # re-created, then recorded


# ------------------------------------------------------------------------------------------ bad input


def test_bad_input_is_a_clear_error_and_leaves_redis_unchanged(redis_url: str, redis_client: redis.Redis) -> None:
    sc: Any = StageCurriculum(three_stages(), redis_url, "bad")  # Any: the calls below pass wrong types on purpose
    task = sc.get_task()
    sc.record_episode(0, True)
    before = dump(redis_client, "bad")
    assert before
    bad_calls: list[tuple[Any, type[Exception], str]] = [
        (lambda: sc.update_task_performance(task.task_id, float("nan")), InvalidScoreError, "finite"),
        (lambda: sc.update_task_performance(task.task_id, float("inf")), InvalidScoreError, "finite"),
        (lambda: sc.update_task_performance(task.task_id, "1.0"), InvalidScoreError, "real number"),
        (lambda: sc.update_task_performance(task.task_id, None), InvalidScoreError, "real number"),
        (lambda: sc.update_task_performance(5, 1.0), ConfigError, "not a task"),
        (lambda: sc.update_task_performance(MAX_STAGES + 7, 1.0), ConfigError, "not a task"),
        (lambda: sc.update_task_performance(str(task.task_id), 1.0), ConfigError, "must be an int"),
        (lambda: sc.record_episode(3, True), ConfigError, "not a stage"),
        (lambda: sc.record_episode(-1, True), ConfigError, "not a stage"),
        (lambda: sc.record_episode("0", True), ConfigError, "must be an int"),
        (lambda: sc.record_episode(True, True), ConfigError, "must be an int"),
        (lambda: sc.record_episode(0.0, True), ConfigError, "must be an int"),
        (lambda: sc.record_episode(0, 1), ConfigError, "must be a bool"),
        (lambda: sc.record_episode(0, "yes"), ConfigError, "must be a bool"),
        (lambda: sc.record_episodes([]), ConfigError, "non-empty"),
        (lambda: sc.record_episodes([(0, True), (9, True)]), ConfigError, "not a stage"),
        (lambda: sc.record_episodes([(0,)]), ConfigError, "pair"),
        (lambda: sc.reset_to(3), ConfigError, "not a stage"),
        (lambda: sc.reset_to("1"), ConfigError, "must be an int"),
    ]
    for call, error, message in bad_calls:
        with pytest.raises(error, match=message):
            call()
        assert dump(redis_client, "bad") == before


def test_other_stages_in_the_same_namespace_are_refused(redis_url: str, redis_client: redis.Redis) -> None:
    StageCurriculum(three_stages(), redis_url, "mismatch").record_episode(0, True)
    before = dump(redis_client, "mismatch")
    other = StageCurriculum(three_stages(threshold=0.5), redis_url, "mismatch")
    with pytest.raises(HyperparameterMismatchError, match=r"stage 0 advance_threshold: stored=0.75 given=0.5"):
        other.current_stage()
    assert dump(redis_client, "mismatch") == before


def test_namespace_and_connection_are_checked(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        StageCurriculum(three_stages(), redis_url, "a:b")
    with pytest.raises(ConfigError, match="redis URL"):
        StageCurriculum(three_stages(), "http://localhost", "x")
    with pytest.raises(ConfigError, match="StageCurriculumConfig"):
        StageCurriculum({"stages": []}, redis_url, "x")  # type: ignore[arg-type]


class Scripts:
    """Calls the stage scripts directly, as a buggy or foreign client could."""

    META_ARGS = (2, "sequential", '{"algorithm":"sequential"}')
    """schema_version, algorithm and hypers: stage_init.lua's arguments 5 to 7."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.keys = NamespaceKeys(namespace).stage_all
        self.init_keys = [*self.keys, NamespaceKeys(namespace).meta]
        sources = script_sources()
        self.record = client.register_script(sources["stage_record"])
        self.reset = client.register_script(sources["stage_reset"])
        self._init = client.register_script(sources["stage_init"])

    def init(self, args: list[Any]) -> Any:
        """stage_init.lua with ``args`` (fingerprint, stages JSON, now, N, then the stages) and the meta
        arguments in their place."""
        return self._init(keys=self.init_keys, args=[*args[:4], *self.META_ARGS, *args[4:]])


def test_lua_scripts_validate_everything_before_writing(redis_url: str, redis_client: redis.Redis) -> None:
    config = three_stages(window=2, threshold=1.0, min_episodes=0)
    sc = StageCurriculum(config, redis_url, "lua")
    sc.record_episode(0, True)
    before = dump(redis_client, "lua")
    s = Scripts(redis_client, "lua")
    fp = config.fingerprint()
    bad_record_args: list[list[Any]] = [
        ["wrong-fingerprint", 1, 1, 0, 1, 0, "1"],
        [fp, 1, 1, 0, 1, 3, "1"],  # unknown stage
        [fp, 1, 1, 0, 1, -1, "1"],
        [fp, 1, 1, 0, 1, "1.5", "1"],
        [fp, 1, 1, 0, 1, "nan", "1"],
        [fp, 1, 1, 0, 1, 0, "2"],
        [fp, 1, 1, 0, 1, 0, "true"],
        [fp, 1, 1, 0, 2, 0, "1", 0],  # missing an argument
        [fp, 1, 1, 0, 1, 0, "1", 0, "1"],  # one too many
        [fp, 1, 0, 0, 1, 0, "1"],  # seq 0
        [fp, "x", 1, 0, 1, 0, "1"],  # client id
        [fp, 1, 1, "nan", 1, 0, "1"],  # now
        [fp, 1, 1, 0, 0],  # no episode
        # A batch whose last episode is bad: the good ones before it (which would advance) are not applied.
        [fp, 1, 1, 0, 3, 0, "1", 0, "1", 7, "1"],
    ]
    for args in bad_record_args:
        with pytest.raises(redis.exceptions.ResponseError, match=r"^CR_(ARGS|STAGE_CONFIG)"):
            s.record(keys=s.keys, args=args)
        assert dump(redis_client, "lua") == before, args
    with pytest.raises(redis.exceptions.ResponseError, match="CR_ARGS"):
        s.record(keys=s.keys[:4], args=[fp, 1, 1, 0, 1, 0, "1"])
    bad_reset_args: list[list[Any]] = [[fp, 3, 0], [fp, "-1", 0], [fp, "x", 0], ["other", 1, 0], [fp, 1]]
    for args in bad_reset_args:
        with pytest.raises(redis.exceptions.ResponseError, match=r"^CR_(ARGS|STAGE_CONFIG)"):
            s.reset(keys=s.keys, args=args)
        assert dump(redis_client, "lua") == before, args
    # On a namespace with no state: bad stage parameters are refused and nothing is created.
    empty = Scripts(redis_client, "lua-empty")
    bad_params: list[list[Any]] = [
        ["a", "nan", 1, 0],
        ["a", "1.5", 1, 0],
        ["a", "0.5", 0, 0],
        ["a", "0.5", 1, "-1"],
        ["", "0.5", 1, 0],
    ]
    for params in bad_params:
        with pytest.raises(redis.exceptions.ResponseError, match=r"^CR_ARGS"):
            empty.init(["fp", "[]", 0, 1, *params])
    assert dump(redis_client, "lua-empty") == {}
    with pytest.raises(redis.exceptions.ResponseError, match=r"^CR_NO_STAGE"):
        empty.record(keys=empty.keys, args=["fp", 1, 1, 0, 1, 0, "1"])
    assert dump(redis_client, "lua-empty") == {}


def corrupt(client: redis.Redis, key: str, field: str, value: Any) -> None:
    """What a hostile import or a hand edit could leave: ``field`` set to ``value``, or deleted (None)."""
    if value is None:
        client.hdel(key, field)
    else:
        client.hset(key, field, value)


@pytest.mark.parametrize(
    ("key", "field", "value", "error"),
    [
        ("stage", "recorded_episodes", 2**53, "CR_OVERFLOW"),
        ("stage", "advancements", "x", "CR_CORRUPT"),
        ("history", "0:episodes", 2**63 - 1, "CR_OVERFLOW"),
        ("history", "0:successes", "1.5", "CR_CORRUPT"),
        ("stage", "episodes", None, "CR_CORRUPT"),  # a count the apply step adds to, deleted
    ],
)
def test_a_corrupt_stored_count_refuses_the_batch_before_any_write(
    redis_url: str, redis_client: redis.Redis, key: str, field: str, value: Any, error: str
) -> None:
    # A hostile import or a hand edit stored something HINCRBY would fail on half-way: refused up front.
    namespace = f"stage-corrupt-{field.replace(':', '-')}"
    config = three_stages(window=2, threshold=1.0, min_episodes=0)
    sc = StageCurriculum(config, redis_url, namespace)
    sc.record_episode(0, False)
    sc.flush()
    keys = NamespaceKeys(namespace)
    target = keys.stage if key == "stage" else keys.stage_history
    corrupt(redis_client, target, field, value)
    before = contents(redis_client, namespace)
    s = Scripts(redis_client, namespace)
    with pytest.raises(redis.exceptions.ResponseError, match=f"^{error}"):
        s.record(keys=s.keys, args=[config.fingerprint(), 7, 1, 0, 2, 0, "1", 0, "1"])  # would advance
    assert contents(redis_client, namespace) == before
    sc.close()


@pytest.mark.parametrize(("field", "value", "error"), [("resets", 2**53, "CR_OVERFLOW"), ("resets", "x", "CR_CORRUPT"),
                                                      ("version", None, "CR_CORRUPT")])  # fmt: skip
def test_a_reset_on_a_corrupt_state_is_refused_before_any_write(
    redis_url: str, redis_client: redis.Redis, field: str, value: Any, error: str
) -> None:
    namespace = f"stage-reset-{field}-{error}"
    config = three_stages()
    sc = StageCurriculum(config, redis_url, namespace)
    sc.current_stage()
    target = NamespaceKeys(namespace).stage
    corrupt(redis_client, target, field, value)
    before = contents(redis_client, namespace)
    s = Scripts(redis_client, namespace)
    with pytest.raises(redis.exceptions.ResponseError, match=f"^{error}"):
        s.reset(keys=s.keys, args=[config.fingerprint(), 1, 0])
    assert contents(redis_client, namespace) == before
    sc.close()


def test_a_resent_batch_is_applied_once(redis_url: str, redis_client: redis.Redis) -> None:
    config = three_stages(window=2, threshold=1.0, min_episodes=0)
    sc = StageCurriculum(config, redis_url, "dedup")
    sc.current_stage()
    s = Scripts(redis_client, "dedup")
    args: list[Any] = [config.fingerprint(), 42, 1, 0, 1, 0, "1"]
    assert s.record(keys=s.keys, args=args) == [1, 0, 0, 1, 0, 0]
    assert s.record(keys=s.keys, args=args) == [0, 0, 0, 0, 0, 0]
    st = sc.state()
    assert (st.recorded_episodes, st.episodes_in_stage, st.duplicate_batches) == (1, 1, 1)


def test_script_errors_are_script_errors(redis_url: str, redis_client: redis.Redis) -> None:
    sc = StageCurriculum(three_stages(), redis_url, "foreign")
    sc.current_stage()
    # Someone replaced the stored config: this client's writes are refused, not mixed in.
    redis_client.hset(NamespaceKeys("foreign").stage_config, "fingerprint", "someone-else")
    with pytest.raises(ScriptError, match="CR_STAGE_CONFIG"):
        sc.record_episode(0, True)
    assert sc.pending_episodes == 0


def test_episodes_wait_out_an_outage_and_are_applied_once(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="aof")
    sc = StageCurriculum(three_stages(window=3, threshold=1.0, min_episodes=0), server.url, "outage")
    task = sc.get_task()
    sc.record_episode(0, True)
    server.stop()
    sc.update_task_performance(task.task_id, 1.0)  # logged, kept pending
    with pytest.raises(StoreUnavailableError):
        sc.record_episode(0, False)
    assert sc.pending_episodes == 2
    assert sc.get_task().label == "easy"  # the last stage read, while Redis is away
    server.start()
    sc.flush()
    assert sc.pending_episodes == 0
    st = sc.state()
    assert (st.recorded_episodes, st.window, st.duplicate_batches) == (3, [True, True, False], 0)
    sc.flush()  # nothing left to send
    assert sc.state().recorded_episodes == 3


# ------------------------------------------------------------------------------------------ stop conditions


def contents(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    """Every key of the namespace with its value (hashes as dicts: a hash's DUMP bytes may change with
    its internal layout, e.g. an incremental rehash, while its contents do not)."""
    out: dict[bytes, Any] = {}
    for key in sorted(client.scan_iter(match="{cr:" + namespace + "}:*")):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        else:
            out[key] = client.dump(key)
    return out


def condition_stages(condition: str, window: int = 5, n: int = 3) -> StageCurriculumConfig:
    """Stage 0 stops on ``condition``; its threshold rule (0.1, no minimum) would advance much earlier."""
    stages = [
        StageConfig(name="s0", env_cfg={"target": 0}, stop_condition=condition, window=window, advance_threshold=0.1),
        *(StageConfig(name=f"s{i}", env_cfg={"target": i}, window=2, advance_threshold=1.0) for i in range(1, n)),
    ]
    return StageCurriculumConfig(stages=stages)


def test_a_condition_advances_exactly_when_it_first_holds(redis_url: str, redis_client: redis.Redis) -> None:
    sc = StageCurriculum(condition_stages("episodes>=6 & success>0.8", window=5), redis_url, "cond")
    # episode: 1-5 all successes (5 < 6), 6: F (window TTTTF = 0.8, not > 0.8), 7-10: T (the F still in the
    # window: 0.8), 11: T (the F left the window: 1.0 > 0.8, and 11 >= 6) -> advance.
    outcomes = [True] * 5 + [False] + [True] * 5
    indices = [sc.record_episode(0, success) for success in outcomes]
    assert indices == [0] * 10 + [1]
    st = sc.state()
    assert (st.index, st.version, st.advancements) == (1, 1, 1)
    assert st.history[0]["advanced_after_episodes"] == 11 and st.history[0]["advanced_with_success_rate"] == 1.0
    assert (st.episodes_in_stage, st.successes_in_stage, st.score_sum, st.window) == (0, 0, 0.0, [])
    assert (
        redis_client.hget(NamespaceKeys("cond").stage_config, "0:program")
        == compile_condition("episodes>=6 & success>0.8").to_json().encode()
    )
    assert redis_client.hget(NamespaceKeys("cond").stage_config, "1:program") is None  # stage 1: the threshold rule
    assert sc.record_episode(1, True) == 1 and sc.record_episode(1, True) == 2


def test_a_condition_on_successes_and_score(connection: str | None) -> None:
    sc = StageCurriculum(condition_stages("successes >= 2 & score >= 2", window=3), connection, "score")
    task = sc.get_task()
    sc.update_task_performance(task.task_id, 5.0)  # success (>= 0.5), score 5: successes 1
    assert sc.record_episodes([(0, False, -4.0)]).stage.index == 0  # successes 1, score 0.5
    assert sc.record_episode(0, True) == 0  # successes 2, no score given: 1.0 -> (5 - 4 + 1) / 3 = 0.667
    st = sc.state()
    assert (st.successes_in_stage, st.score_sum, st.score_mean) == (2, 2.0, 2.0 / 3)
    assert values_of(st)["score"] == 2.0 / 3
    assert sc.record_episodes([(0, False, 6.0)]).stage.index == 1  # score 8 / 4 = 2, successes 2: holds
    assert sc.current_stage().index == 1
    assert sc.state().history[0]["advanced_after_episodes"] == 4


def test_a_condition_on_seconds_uses_the_server_clock(redis_url: str, redis_client: redis.Redis) -> None:
    sc = StageCurriculum(condition_stages("seconds >= 1 & episodes >= 2"), redis_url, "seconds")
    sc.current_stage()
    entered = sc.state().entered_server_at
    seconds, microseconds = redis_client.time()
    assert entered is not None and 0 <= seconds + microseconds / 1e6 - entered < 1
    assert sc.record_episode(0, True) == 0
    assert sc.record_episode(0, True) == 0  # 2 episodes, but not 1 s yet
    time.sleep(1.05)
    assert sc.record_episode(0, False) == 1
    assert sc.state().entered_server_at is None  # stage 1 has no condition on seconds
    sc.reset_to(0)
    again = sc.state().entered_server_at
    assert again is not None and again > entered
    assert sc.record_episode(0, True) == 0 and sc.record_episode(0, True) == 0  # the clock restarted


class ConditionModel:
    """Advancement with stop conditions, written plainly with the Python evaluator."""

    def __init__(self, config: StageCurriculumConfig) -> None:
        self.config = config
        self.index = self.version = self.episodes = self.successes = self.stale = 0
        self.score_sum = 0.0
        self.window: deque[bool] = deque()
        self.checks = [0, 0]  # conditions evaluated false, true

    def values(self) -> dict[str, float]:
        return {
            "episodes": float(self.episodes),
            "successes": float(self.successes),
            "success": sum(self.window) / len(self.window) if self.window else 0.0,
            "window": float(len(self.window)),
            "score": self.score_sum / self.episodes if self.episodes else 0.0,
            "seconds": 0.0,
        }

    def record(self, index: int, success: bool, score: float) -> None:
        if index != self.index:
            self.stale += 1
            return
        stage = self.config.stages[self.index]
        self.episodes += 1
        self.successes += success
        self.score_sum += score
        self.window.append(success)
        if len(self.window) > stage.window:
            self.window.popleft()
        if self.index == len(self.config.stages) - 1:
            return
        condition = stage.condition()
        assert condition is not None
        holds = evaluate(condition.program, self.values())
        self.checks[holds] += 1
        if holds:
            self.index += 1
            self.version += 1
            self.episodes = self.successes = 0
            self.score_sum = 0.0
            self.window.clear()


def random_condition(rng: random.Random, depth: int = 2) -> str:
    if depth == 0 or rng.random() < 0.35:
        name = rng.choice(["episodes", "successes", "success", "window", "score"])
        value = {
            "episodes": rng.randint(0, 25),
            "successes": rng.randint(0, 15),
            "success": rng.choice([0, 0.25, 0.5, 0.6, 0.75, 0.8, 1]),
            "window": rng.randint(0, 6),
            "score": round(rng.uniform(-0.5, 1.5), 2),
        }[name]
        return f"{name} {rng.choice(['>=', '>', '<=', '<', '==', '!='])} {value}"
    kind = rng.choice(["&", "&", "and", "|", "or", "!"])
    if kind == "!":
        return f"!({random_condition(rng, depth - 1)})"
    return f"({random_condition(rng, depth - 1)}) {kind} ({random_condition(rng, depth - 1)})"


@pytest.mark.parametrize("seed", range(6))
def test_lua_conditions_match_the_python_evaluator_on_random_states(connection: str | None, seed: int) -> None:
    rng = random.Random(seed)
    stages = [
        # The random part may never hold (e.g. window > 6 with a window of 3): "| episodes >= K" moves on.
        StageConfig(
            name=f"s{i}",
            stop_condition=f"({random_condition(rng)}) | episodes >= {rng.randint(5, 40)}",
            window=rng.choice([1, 3, 6]),
        )
        for i in range(7)
    ]
    config = StageCurriculumConfig(stages=[*stages, StageConfig(name="last")])
    sc = StageCurriculum(config, connection, f"condmodel{seed}")
    model = ConditionModel(config)
    for _ in range(300):
        batch: list[tuple[int, bool, float]] = []
        for _ in range(rng.randint(1, 3)):
            index = model.index if rng.random() < 0.9 else rng.randrange(len(config.stages))
            success = rng.random() < 0.7
            score = rng.uniform(-1.0, 2.0)
            batch.append((index, success, score))
            model.record(index, success, score)
        result = sc.record_episodes(batch)
        assert (result.stage.index, result.stage.version) == (model.index, model.version), batch
        st = sc.state()
        assert values_of(st) == model.values()  # the same numbers, bit for bit
        assert (st.stale_episodes, st.window) == (model.stale, list(model.window))
    assert model.checks[0] > 0 and model.checks[1] > 0  # both outcomes were exercised
    assert model.index >= 3


def test_a_malformed_program_sent_to_the_scripts_is_refused_with_nothing_written(
    redis_url: str, redis_client: redis.Redis
) -> None:
    bad_programs = [
        "episodes>=5",
        "[[",
        "[]",
        "{}",
        '{"1": ["num", 1]}',
        "null",
        "[null]",
        '"[]"',
        '[["var","episodes"]]',  # a number, not a condition
        '[["var","__import__"],["num",1],["op",">"]]',
        '[["var","episodes"],["num",1e999],["op",">"]]',
        '[["var","episodes"],["num","1"],["op",">"]]',
        '[["var","episodes"],["num",true],["op",">"]]',
        '[["num",1],["op",">"]]',
        '[["op","not"]]',
        '[["var","episodes"],["num",1],["op","and"]]',
        '[["var","episodes"],["num",1],["op",">"],["num",1],["op",">"]]',
        '[["var","episodes"],["num",1],["op",">"],["var","score"]]',
        '[["var","episodes",3],["num",1],["op",">"]]',
        '[["var","episodes"],["num",1],["op","os.execute"]]',
        '[["call","episodes"],["num",1],["op",">"]]',
        '[{"1":"var","2":"episodes"},["num",1],["op",">"]]',
        "[" + ",".join(['["var","episodes"],["num",1],["op",">"]'] + ['["op","not"]'] * 254) + "]",  # 257
    ]
    # The Python validator refuses each of them too.
    for raw in bad_programs:
        with pytest.raises(ConditionError):
            program_from_json(raw)
    config = condition_stages("episodes>=2")
    good = [compile_condition("episodes>=2").to_json(), "", ""]
    base: list[Any] = [config.fingerprint(), config.stages_json(), 0, 3]
    for stage in config.stages:
        base += [stage.name, repr(stage.advance_threshold), stage.window, stage.min_episodes]

    empty = Scripts(redis_client, "prog-empty")
    for raw in bad_programs:
        for position in range(3):  # as the program of stage 0, 1 or 2
            programs = list(good)
            programs[position] = raw
            with pytest.raises(redis.exceptions.ResponseError, match=rf"^CR_ARGS.*stage {position} stop condition"):
                empty.init([*base, *programs])
    assert contents(redis_client, "prog-empty") == {}
    assert empty.init([*base, *good]) == [b"created"]

    # On a namespace with state: nothing changes either.
    sc = StageCurriculum(config, redis_url, "prog")
    sc.record_episode(0, True)
    s = Scripts(redis_client, "prog")
    before = contents(redis_client, "prog")
    for raw in bad_programs:
        with pytest.raises(redis.exceptions.ResponseError, match=r"^CR_ARGS"):
            s.init([*base, raw, "", ""])
        assert contents(redis_client, "prog") == before

    # A stored program corrupted behind the library's back: a record is refused before any write, also when
    # only a stage the batch would advance into is corrupt.
    keys = NamespaceKeys("prog")
    for field, raw in [("0:program", bad_programs[9]), ("1:program", bad_programs[14])]:
        redis_client.hset(keys.stage_config, field, raw)
        before = contents(redis_client, "prog")
        message = rf"^CR_STAGE_CONFIG the stored stop condition program of stage {field[0]}"
        with pytest.raises(ScriptError, match=message):
            sc.record_episodes([(0, True), (1, True)])  # would advance 0 -> 1 on its first episode
        assert contents(redis_client, "prog") == before
        redis_client.hdel(keys.stage_config, field)
        if field == "0:program":
            redis_client.hset(keys.stage_config, field, good[0])
    assert sc.record_episodes([(0, True), (1, True)]).stage.index == 1


def test_other_conditions_in_the_same_namespace_are_refused(redis_url: str, redis_client: redis.Redis) -> None:
    StageCurriculum(condition_stages("episodes >= 5"), redis_url, "condmismatch").record_episode(0, True)
    before = contents(redis_client, "condmismatch")
    other = StageCurriculum(condition_stages("episodes >= 6"), redis_url, "condmismatch")
    with pytest.raises(
        HyperparameterMismatchError, match=r"stage 0 stop_condition: stored='episodes >= 5' given='episodes >= 6'"
    ):
        other.current_stage()
    plain = StageCurriculum(three_stages(), redis_url, "condmismatch")
    with pytest.raises(HyperparameterMismatchError, match="stop_condition: stored='episodes >= 5' given=None"):
        plain.current_stage()
    assert contents(redis_client, "condmismatch") == before


@pytest.mark.slow
def test_four_processes_advance_exactly_once_per_stage_with_conditions(redis_url: str) -> None:
    condition = "episodes >= 25 & successes >= 25 & window == 10 & success >= 1 & score >= 1"
    config = StageCurriculumConfig(
        stages=[
            StageConfig(name=name, env_cfg={"target": target}, window=10, stop_condition=condition)
            for target, name in enumerate(["easy", "medium", "hard"])
        ]
    )
    curriculum = StageCurriculum(config, redis_url, "condprocs")
    reported, _ = run_processes(curriculum, episodes=150, success_rate=1.0)
    st = curriculum.state()
    assert (st.index, st.version, st.advancements) == (2, 2, 2)
    assert st.history[0]["episodes"] == st.history[1]["episodes"] == 25  # the condition's first truth, once
    assert st.history[0]["advanced_after_episodes"] == st.history[1]["advanced_after_episodes"] == 25
    assert st.recorded_episodes == reported == 600
    assert 25 + 25 + st.history[2]["episodes"] + st.stale_episodes == reported
    assert st.duplicate_batches == 0
