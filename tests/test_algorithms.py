"""Every curriculum algorithm on the shared store: hand-computed formulas, Lua vs Python bit for bit,
config selection, refusal of another algorithm, export/import, and four real processes on a real Redis."""

from __future__ import annotations

import hashlib
import multiprocessing
from typing import Any

import numpy as np
import pytest
import redis
from workers import report_outcomes

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    SamplerConfig,
    ScriptError,
    Task,
)
from curriculum_redis.algorithms import (
    ALGORITHMS,
    PoolAlgorithm,
    algorithm_of,
    get_algorithm,
    parse_config,
    pool_algorithms,
    registry,
)
from curriculum_redis.algorithms.frontier import FrontierConfig
from curriculum_redis.algorithms.learnability import LearnabilityConfig, learnability_distribution
from curriculum_redis.algorithms.prioritized_replay import (
    PrioritizedReplayConfig,
    plr_distribution,
    rank_weights,
    replay_probability,
    staleness_weights,
)
from curriculum_redis.algorithms.uniform import UniformConfig
from curriculum_redis.config import AlgorithmConfig, PoolConfig
from curriculum_redis.errors import ConfigError, HyperparameterMismatchError
from curriculum_redis.labels import label_hash
from curriculum_redis.state import CurriculumState
from curriculum_redis.store.base import Outcome, OutcomeBatch, ScoreSnapshot
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.schema import RECORD_SIZE
from curriculum_redis.store.scripts import algorithm_sources, record_source

GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")
SPAWN = multiprocessing.get_context("spawn")

CONFIGS: dict[str, PoolConfig] = {
    "learning_progress": LearningProgressConfig(num_active_tasks=8),
    "learning_progress_variance": LearningProgressConfig(num_active_tasks=8, use_bidirectional=False),
    "prioritized_replay": PrioritizedReplayConfig(num_active_tasks=8),
    "prioritized_replay_ema": PrioritizedReplayConfig(num_active_tasks=8, score_update="ema", score_ema_alpha=0.3),
    "learnability": LearnabilityConfig(num_active_tasks=8, success_ema_alpha=0.3),
    "uniform": UniformConfig(num_active_tasks=8),
    "frontier": FrontierConfig(num_active_tasks=8),
    "frontier_tuned": FrontierConfig(num_active_tasks=8, fast_alpha=0.3, slow_alpha=0.07, gap_z=1.0,
                                     low_success_weight=1.0, success_threshold=0.4),
}
CONFIGURED = sorted({cfg.algorithm for cfg in CONFIGS.values()})
"""The package's pool algorithms, each with a config here (an algorithm registered from outside, like the
tests' ``constant``, brings its own tests)."""


def snapshot_of(algorithm: str, rows: list[dict[str, float]], clock: int = 0) -> ScoreSnapshot:
    records = np.zeros(len(rows), dtype=get_algorithm(algorithm).dtype())
    for i, row in enumerate(rows):
        records[i]["task_id"] = i + 1
        for name, value in row.items():
            records[i][name] = value
    return ScoreSnapshot(0, records, episode_clock=clock)


# --------------------------------------------------------------------------- prioritized level replay


def test_plr_defaults_are_the_papers() -> None:
    cfg = PrioritizedReplayConfig()
    assert (cfg.temperature, cfg.staleness_coef, cfg.replay_schedule) == (0.1, 0.1, "proportionate")


def test_plr_rank_weights_are_inverse_rank_to_the_power_one_over_beta() -> None:
    # Ranks 3, 1, 2; h^(1/0.5) = h^2 = 1/9, 1, 1/4, which sum to 49/36.
    np.testing.assert_allclose(rank_weights(np.array([0.2, 0.9, 0.5]), 0.5), [4 / 49, 36 / 49, 9 / 49])
    # Ties keep pool order: ranks 1 and 2, so h^1 = 1, 1/2.
    np.testing.assert_allclose(rank_weights(np.array([0.5, 0.5]), 1.0), [2 / 3, 1 / 3])


def test_plr_staleness_is_proportional_to_episodes_since_the_last_recorded_one() -> None:
    np.testing.assert_allclose(staleness_weights(np.array([10.0, 4.0, 7.0]), 12.0), [2 / 15, 8 / 15, 5 / 15])
    np.testing.assert_allclose(staleness_weights(np.array([5.0, 5.0]), 5.0), [0.5, 0.5])


CASE = {
    "completions": np.array([3.0, 0.0, 2.0, 0.0]),
    "score": np.array([0.2, 0.0, 0.9, 0.0]),
    "last_episode": np.array([4.0, 0.0, 10.0, 0.0]),
}
# Seen: tasks 0 and 2. P_S = (1/4, 1)/(5/4) = (0.2, 0.8); P_C = (12-4, 12-10)/10 = (0.8, 0.2);
# with rho = 0.25, P = 0.75 P_S + 0.25 P_C = (0.35, 0.65).


def test_plr_proportionate_schedule_replays_seen_over_total() -> None:
    cfg = PrioritizedReplayConfig(temperature=0.5, staleness_coef=0.25)
    probs = plr_distribution(CASE["completions"], CASE["score"], CASE["last_episode"], 12.0, cfg)
    # p_replay = 2/4: seen tasks share 0.5 by P, the unseen ones 0.25 each.
    np.testing.assert_allclose(probs, [0.175, 0.25, 0.325, 0.25])


def test_plr_fixed_schedule_replays_with_the_given_probability() -> None:
    cfg = PrioritizedReplayConfig(temperature=0.5, staleness_coef=0.25, replay_schedule="fixed", replay_probability=0.8)
    probs = plr_distribution(CASE["completions"], CASE["score"], CASE["last_episode"], 12.0, cfg)
    np.testing.assert_allclose(probs, [0.8 * 0.35, 0.1, 0.8 * 0.65, 0.1])
    assert replay_probability(0, 4, cfg) == 0.0 and replay_probability(4, 4, cfg) == 1.0


def test_plr_distribution_reads_the_snapshot_and_its_episode_clock() -> None:
    cfg = PrioritizedReplayConfig(temperature=0.5, staleness_coef=0.25)
    rows = [{name: float(CASE[name][i]) for name in CASE} for i in range(4)]
    probs = get_algorithm("prioritized_replay").distribution(snapshot_of("prioritized_replay", rows, 12), cfg)
    np.testing.assert_allclose(probs, [0.175, 0.25, 0.325, 0.25])


def test_plr_score_is_replaced_or_averaged() -> None:
    plr = get_algorithm("prioritized_replay")
    for rule, expected in (("replace", 0.2), ("ema", 0.8 + 0.5 * (0.2 - 0.8))):
        cfg = PrioritizedReplayConfig(score_update=rule, score_ema_alpha=0.5)  # type: ignore[arg-type]
        state = {"completions": 0.0, "score": 0.0, "success_ema": 0.0}
        assert plr.update(state, 0.8, 1.0, cfg, 1) == 0.8
        state["completions"] = 1.0
        assert plr.update(state, 0.2, 0.0, cfg, 2) == expected


# --------------------------------------------------------------------------- learnability


def test_learnability_is_p_times_one_minus_p_of_the_success_ema() -> None:
    alg, cfg = get_algorithm("learnability"), LearnabilityConfig(success_ema_alpha=0.5)
    state = {"completions": 0.0, "learnability": 0.0, "success_ema": 0.0}
    for n, success in enumerate((1.0, 0.0, 1.0)):
        state["completions"] = float(n)
        value = alg.update(state, success, success, cfg, n + 1)
    # p: 1 -> 0.5 -> 0.75; 0.75 * 0.25
    assert state["success_ema"] == 0.75 and value == 0.1875 == state["learnability"]


def test_learnability_proportional_sampling() -> None:
    completions = np.array([10.0, 10.0, 10.0, 1.0])
    learnability = np.array([0.25, 0.09, 0.0, 0.0])  # the last task is young: it weighs 0.25
    cfg = LearnabilityConfig(min_samples=5, rand_task_rate=0.0)
    np.testing.assert_allclose(learnability_distribution(completions, learnability, cfg), [25 / 59, 9 / 59, 0, 25 / 59])
    mixed = learnability_distribution(completions, learnability, cfg.model_copy(update={"rand_task_rate": 0.1}))
    np.testing.assert_allclose(mixed, 0.9 * np.array([25 / 59, 9 / 59, 0, 25 / 59]) + 0.025)


def test_learnability_top_k_sampling() -> None:
    completions = np.array([10.0, 10.0, 10.0, 1.0])
    learnability = np.array([0.25, 0.09, 0.0, 0.0])
    cfg = LearnabilityConfig(min_samples=5, rand_task_rate=0.0, sampling="top_k", top_k=2)
    np.testing.assert_allclose(learnability_distribution(completions, learnability, cfg), [0.5, 0, 0, 0.5])
    three = cfg.model_copy(update={"top_k": 3})
    np.testing.assert_allclose(learnability_distribution(completions, learnability, three), [1 / 3, 1 / 3, 0, 1 / 3])


def test_uniform_is_uniform_and_evicts_nothing_for_its_score() -> None:
    snap = snapshot_of("uniform", [{"completions": c} for c in (0.0, 5.0, 50.0)])
    np.testing.assert_allclose(get_algorithm("uniform").distribution(snap, UniformConfig()), [1 / 3] * 3)
    idx, _ = get_algorithm("uniform").eviction_candidates(snap, UniformConfig(max_evictions_per_refresh=4), 4)
    assert idx.size == 0


# --------------------------------------------------------------------------- interface and configs


def test_every_algorithm_has_its_lua_update_and_a_128_byte_record() -> None:
    assert set(algorithm_sources()) <= set(registry())
    built_in = {name: a for name, a in ALGORITHMS.items() if type(a).__module__.startswith("curriculum_redis.")}
    assert set(built_in) <= set(algorithm_sources())
    assert set(built_in) == set(CONFIGURED)
    for name, algorithm in built_in.items():
        source = algorithm.lua_source()
        head = "\n".join(source.splitlines()[:5])
        assert "KEYS" in head and "ARGV" in head, name
        assert f"local ALGORITHM = '{name}'" in source
        assert f"local SCORE_FIELD = '{algorithm.score_field}'" in source
        assert algorithm.dtype().itemsize == RECORD_SIZE == 128
        assert record_source(name).count("local function update(") == 1


def test_each_algorithm_is_registered_by_name_with_its_own_config_class() -> None:
    for name, algorithm in registry().items():
        assert algorithm.name == name == algorithm.config_class.model_fields["algorithm"].default
        assert algorithm.shape in ("pool", "stages")
        assert issubclass(algorithm.config_class, AlgorithmConfig)
        assert parse_config({"algorithm": name, **({} if algorithm.shape == "pool" else STAGES)}).algorithm == name
    assert set(pool_algorithms()) == {name for name, a in registry().items() if a.shape == "pool"}
    assert type(algorithm_of(UniformConfig())).__module__ == "curriculum_redis.algorithms.uniform"


STAGES = {"stages": [{"name": "only", "env_cfg": {}}]}


def test_a_second_algorithm_of_a_name_or_one_named_unlike_its_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="two algorithms are named 'uniform'"):

        class Impostor(PoolAlgorithm):
            name = "uniform"
            config_class = UniformConfig

    with pytest.raises(ConfigError, match="its config's algorithm is 'uniform'"):

        class Misnamed(PoolAlgorithm):
            name = "misnamed"
            config_class = UniformConfig

    assert type(registry()["uniform"]).__name__ == "Uniform" and "misnamed" not in registry()


def test_an_unknown_algorithm_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown algorithm 'nope'; choose one of .*learning_progress"):
        parse_config({"algorithm": "nope"})
    with pytest.raises(ConfigError, match="unknown algorithm"):
        get_algorithm("nope")


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_a_config_file_names_the_algorithm(name: str) -> None:
    raw = {"task_generator": GENERATOR.model_dump(mode="json"), "algorithm": {"algorithm": name, "num_active_tasks": 4}}
    config = CurriculumConfig.model_validate(raw)
    assert config.algorithm.algorithm == name and config.algorithm.num_active_tasks == 4
    assert CurriculumConfig.model_validate_json(config.model_dump_json()) == config


def test_a_config_without_a_name_is_the_default_algorithm_and_an_unknown_name_is_refused() -> None:
    generator = GENERATOR.model_dump(mode="json")
    config = CurriculumConfig.model_validate({"task_generator": generator, "algorithm": {"num_active_tasks": 4}})
    assert config.algorithm == FrontierConfig(num_active_tasks=4)
    with pytest.raises(ValueError):
        CurriculumConfig.model_validate({"task_generator": generator, "algorithm": {"algorithm": "nope"}})
    with pytest.raises(ValueError):  # another algorithm's field
        CurriculumConfig.model_validate(
            {"task_generator": generator, "algorithm": {"algorithm": "uniform", "temperature": 0.1}}
        )


def make_config(
    algorithm: PoolConfig, url: str | None = None, namespace: str = "alg", **kw: Any
) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR, algorithm=algorithm, redis_url=url, namespace=namespace,
        buffer=BufferConfig(batch_size=8), sampler=SamplerConfig(refresh_every_draws=40), **kw,
    )  # fmt: skip


@pytest.mark.parametrize("policy", ["error", "allow_safe", "adopt"])
def test_attaching_with_another_algorithm_is_refused_whatever_the_policy(redis_url: str, policy: str) -> None:
    for store_url in (None, redis_url):
        store = MemoryStore("x") if store_url is None else RedisStore.from_url(redis_url, f"other-{policy}")
        Curriculum(make_config(LearningProgressConfig(num_active_tasks=4)), store).get_task()
        other = make_config(PrioritizedReplayConfig(num_active_tasks=4), on_mismatch=policy)  # type: ignore[arg-type]
        with pytest.raises(HyperparameterMismatchError) as info:
            Curriculum(other, store).get_task()
        assert info.value.differences == {"algorithm": ("learning_progress", "prioritized_replay")}
        assert "keeps its algorithm" in str(info.value) and "on_mismatch" not in str(info.value)


def test_allow_safe_accepts_an_algorithms_sampling_fields(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, "safe-plr")
    Curriculum(make_config(PrioritizedReplayConfig(num_active_tasks=4)), store).get_task()
    sampling = PrioritizedReplayConfig(num_active_tasks=4, temperature=0.3, staleness_coef=0.5)
    c = Curriculum(make_config(sampling, on_mismatch="allow_safe"), store)
    c.get_task()
    assert c.hypers == sampling
    with pytest.raises(HyperparameterMismatchError):
        Curriculum(make_config(PrioritizedReplayConfig(num_active_tasks=4, score_update="ema"),
                               on_mismatch="allow_safe"), store).get_task()  # fmt: skip


def test_the_record_script_of_another_algorithm_refuses_before_writing(
    redis_url: str, redis_client: redis.Redis
) -> None:
    lp = RedisStore.from_url(redis_url, "guard")
    lp.attach(LearningProgressConfig(num_active_tasks=4))
    lp.create_tasks([Task(1, "a", {})])
    before = {k: redis_client.dump(k) for k in redis_client.scan_iter(match="{cr:guard}:*")}
    plr = RedisStore.from_url(redis_url, "guard")
    assert plr.attach(PrioritizedReplayConfig(num_active_tasks=4)) == LearningProgressConfig(num_active_tasks=4)
    batch = OutcomeBatch(7, 1, [Outcome(1, label_hash("a"), 0.5)], {label_hash("a"): 1})
    with pytest.raises(ScriptError, match="CR_ALGORITHM"):
        plr.record(batch)
    assert {k: redis_client.dump(k) for k in redis_client.scan_iter(match="{cr:guard}:*")} == before


# --------------------------------------------------------------------------- Lua == Python, bit for bit


def random_batches(seed: int, n_batches: int) -> list[OutcomeBatch]:
    rng = np.random.default_rng(seed)
    batches = []
    for b in range(n_batches):
        outcomes = []
        for _ in range(int(rng.integers(1, 12))):
            task_id = int(rng.integers(1, 9))
            failed = bool(rng.random() < 0.1)
            score = 0.0 if failed else float(rng.choice([rng.random(), 0.0, 1.0, 0.5]))
            outcomes.append(Outcome(task_id, label_hash(f"l{task_id % 3}"), score, failed))
        batches.append(OutcomeBatch(1 + b % 3, 1 + b // 3, outcomes, {label_hash("l0"): 2}))
    return batches


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_lua_update_equals_the_python_mirror_bit_for_bit(redis_url: str, case: str) -> None:
    cfg = CONFIGS[case]
    memory, red = MemoryStore("bits"), RedisStore.from_url(redis_url, f"bits-{case}")
    tasks = [Task(i, f"l{i % 3}", {}) for i in range(1, 9)]
    for store in (memory, red):
        store.attach(cfg)
        store.create_tasks(tasks)
        for batch in random_batches(3, 60):
            store.record(batch)
    mem_snap, red_snap = memory.snapshot(), red.snapshot()
    assert mem_snap.records.dtype == red_snap.records.dtype == get_algorithm(cfg.algorithm).dtype()
    assert mem_snap.records.tobytes() == red_snap.records.tobytes()
    assert mem_snap.episode_clock == red_snap.episode_clock == memory.counters()["num_completed"] > 300
    for task in tasks:
        assert memory.read_task(task.task_id) == red.read_task(task.task_id)
    assert memory.label_stats() == red.label_stats()
    clocks = red_snap.column("last_episode")
    assert len(set(clocks.tolist())) == 8 and clocks.max() == red_snap.episode_clock
    red.close()


# --------------------------------------------------------------------------- export / import


@pytest.mark.parametrize("name", CONFIGURED)
def test_export_import_round_trips_every_algorithm(redis_url: str, name: str) -> None:
    cfg = next(c for c in CONFIGS.values() if c.algorithm == name)
    for url in (None, redis_url):
        c = Curriculum(make_config(cfg, url, f"rt-{name}"))
        rng = np.random.default_rng(0)
        for _ in range(300):
            task = c.get_task()
            c.update_task_performance(task.task_id, float(rng.random()))
        state = c.get_state()
        assert CurriculumState.model_validate_json(state.model_dump_json()) == state
        assert sum(t.completions for t in state.tasks) > 0
        target = Curriculum(make_config(cfg, url, f"rt2-{name}"))
        target.load_state(state)
        again = target.store.export_state()
        assert again.tasks == state.tasks and again.hypers == state.hypers
        assert target.store.snapshot().records.tobytes() == c.store.snapshot().records.tobytes()
        c.close()
        target.close()


# --------------------------------------------------------------------------- four processes, real Redis


def config_json(url: str, namespace: str, algorithm: PoolConfig) -> str:
    return CurriculumConfig(
        task_generator=GENERATOR, algorithm=algorithm, redis_url=url, namespace=namespace,
        buffer=BufferConfig(batch_size=32), sampler=SamplerConfig(refresh_every_draws=200),
    ).model_dump_json()  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ["prioritized_replay", "learnability", "uniform", "learning_progress", "frontier"])
def test_four_processes_give_exact_counts_for_every_algorithm(redis_url: str, redis_server: Any, name: str) -> None:
    """The same worker code as the learning-progress test; only ``config.algorithm`` changes. Every task's
    stored record equals a replay of the batches, in the order Redis applied them, by the Python mirror."""
    from test_redis_processes import MonitorLog

    cfg = next(c for c in CONFIGS.values() if c.algorithm == name).model_copy(
        update={"num_active_tasks": 16, "max_evictions_per_refresh": 0}
    )
    namespace = f"four-{name}"
    payload = config_json(redis_url, namespace, cfg)
    monitor = MonitorLog("127.0.0.1", redis_server.port)
    try:
        with SPAWN.Pool(4) as pool:
            results = pool.starmap(report_outcomes, [(payload, 2000, seed) for seed in range(4)])
    finally:
        monitor.stop()
    store = RedisStore.from_url(redis_url, namespace)
    counters = store.counters()
    assert counters["num_completed"] == counters["num_scheduled"] == 8000
    assert counters["num_outcomes_for_evicted_tasks"] == 0 and counters["num_duplicate_batches"] == 0
    assert len({r["client_id"] for r in results}) == 4
    reported: dict[int, int] = {}
    for result in results:
        for task_id, count in result["per_task"].items():
            reported[task_id] = reported.get(task_id, 0) + count
    snap = store.snapshot()
    assert snap.size == 16
    assert dict(zip(snap.task_ids.tolist(), snap.column("completions").astype(int).tolist(), strict=True)) == reported
    # The episode clock is exact: every outcome got its own tick, the last one is the count.
    assert snap.episode_clock == 8000 and snap.column("last_episode").max() == 8000
    assert len(set(snap.column("last_episode").tolist())) == 16
    assert sum(s.completions for s in store.label_stats().values()) == 8000
    sha = hashlib.sha1(record_source(name).encode()).hexdigest()
    replayed = replay(monitor.commands("EVALSHA"), sha, cfg)
    assert set(replayed) == set(reported)
    for task_id, state in replayed.items():
        record = store.read_task(task_id)
        assert record is not None
        for field, value in state.items():
            assert getattr(record, field) == value, (task_id, field)
    store.close()


def replay(evalsha_calls: list[list[str]], sha: str, cfg: PoolConfig) -> dict[int, dict[str, float]]:
    """Every recorded outcome re-applied by the algorithm's Python mirror, in the order Redis applied the
    batches, with the same episode clock."""
    algorithm = get_algorithm(cfg.algorithm)
    states: dict[int, dict[str, float]] = {}
    seen: set[tuple[str, str]] = set()
    clock = 0
    for call in evalsha_calls:
        if call[1] != sha:
            continue
        args = call[3 + int(call[2]) :]
        if (args[0], args[1]) in seen:
            continue  # a re-sent batch: the script ignored it
        seen.add((args[0], args[1]))
        pos = 4
        for _ in range(int(args[2])):
            task_id, count = int(args[pos]), int(args[pos + 3])
            fields = ("completions", "score_sum", "last_score", "last_episode", *algorithm.stored_fields())
            state = states.setdefault(task_id, dict.fromkeys(fields, 0.0))
            for raw in args[pos + 4 : pos + 4 + count]:
                x = float(raw.lstrip("f"))
                clock += 1
                state[algorithm.score_field] = algorithm.update(
                    state, x, 1.0 if x >= cfg.success_threshold else 0.0, cfg, clock
                )
                state["completions"] += 1
                state["score_sum"] += x
                state["last_score"] = x
                state["last_episode"] = clock
            pos += 4 + count
    return states


@pytest.mark.slow
@pytest.mark.parametrize("name", ["prioritized_replay", "learnability"])
def test_concurrent_eviction_keeps_every_algorithms_pool_consistent(
    redis_url: str, redis_client: redis.Redis, name: str
) -> None:
    from workers import churn

    cfg = next(c for c in CONFIGS.values() if c.algorithm == name).model_copy(
        update={"num_active_tasks": 24, "min_presentations_for_eviction": 1, "eviction_threshold_percentile": 1.0,
                "max_evictions_per_refresh": 8}
    )  # fmt: skip
    namespace = f"churn-{name}"
    with SPAWN.Pool(4) as pool:
        reported = sum(pool.starmap(churn, [(config_json(redis_url, namespace, cfg), 1500, seed) for seed in range(4)]))
    algorithm = get_algorithm(name)
    dtype = algorithm.dtype()
    prefix = "{cr:" + namespace + "}"
    blob = redis_client.get(f"{prefix}:scores") or b""
    assert len(blob) == dtype.itemsize * 24
    records = np.frombuffer(blob, dtype=dtype)
    pool_slots = {int(row["task_id"]): slot for slot, row in enumerate(records) if row["task_id"] > 0}
    assert len(pool_slots) == 24
    for task_id, slot in pool_slots.items():
        fields = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"{prefix}:task:{task_id}").items()}
        assert set(fields) == {"slot", "label_hash", "completions", "score_sum", "last_score",
                               "consecutive_failures", "last_episode", *algorithm.stored_fields()}  # fmt: skip
        assert int(fields["slot"]) == slot
        for field in algorithm.snapshot_fields()[1:]:
            if not field.startswith("unused_"):
                assert float(records[slot][field]) == float(fields[field]), (task_id, field)
    counters = {k.decode(): int(v) for k, v in redis_client.hgetall(f"{prefix}:counters").items()}
    assert counters["num_evicted"] > 10
    assert counters["num_created"] - counters["num_evicted"] == 24
    assert counters["num_completed"] == reported


def test_stats_name_the_algorithms_score(redis_url: str) -> None:
    c = Curriculum(make_config(LearnabilityConfig(num_active_tasks=8), redis_url, "stats-learnability"))
    for _ in range(100):
        task = c.get_task()
        c.update_task_performance(task.task_id, float(task.task_id % 2))
    stats = c.stats()
    assert {"learnability/mean", "gini/learnability", "pool/mean_success"} <= set(stats)
    assert not any(key.startswith("lp/") for key in stats)
    assert stats["num_completed"] == 100
    c.close()
    u = Curriculum(make_config(UniformConfig(num_active_tasks=8), None, "stats-uniform"))
    for _ in range(20):
        u.update_task_performance(u.get_task().task_id, 1.0)
    assert u.stats()["score/max"] == 0.0 and "pool/mean_success" not in u.stats()


@pytest.mark.parametrize("name", CONFIGURED)
def test_admin_export_import_file_round_trips_every_algorithm(
    redis_url: str, redis_client: redis.Redis, tmp_path: Any, name: str
) -> None:
    from curriculum_redis import admin

    cfg = next(c for c in CONFIGS.values() if c.algorithm == name)
    with Curriculum(make_config(cfg, redis_url, f"file-{name}")) as c:
        rng = np.random.default_rng(1)
        for _ in range(200):
            c.update_task_performance(c.get_task().task_id, float(rng.random()))
    store = RedisStore(redis_client, f"file-{name}")
    before = store.export_state()
    path = tmp_path / f"{name}.crx"
    admin.export_namespace(redis_client, f"file-{name}", path)
    assert admin.decode_state(path.read_bytes()) == before
    admin.import_namespace(redis_client, f"file2-{name}", path)
    copy = RedisStore(redis_client, f"file2-{name}")
    after = copy.export_state()
    assert after.tasks == before.tasks and after.hypers == before.hypers == cfg
    assert copy.snapshot().records.tobytes() == store.snapshot().records.tobytes()
    assert redis_client.hget("{cr:file2-" + name + "}:meta", "algorithm") == name.encode()
    # The copy runs on with the same algorithm; its record script accepts the namespace.
    with Curriculum(make_config(cfg, redis_url, f"file2-{name}")) as resumed:
        for _ in range(20):
            resumed.update_task_performance(resumed.get_task().task_id, 0.5)
        resumed.flush()
        assert resumed.stats()["num_completed"] == before.counters["num_completed"] + 20
