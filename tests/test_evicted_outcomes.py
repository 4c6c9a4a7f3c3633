"""Outcomes whose task was evicted while they sat in a buffer still count (issue 11).

Every reported episode counts in ``num_completed`` and in its label's completions, score sum and successes;
only the per-task update is skipped, and counted as ``num_outcomes_for_evicted_tasks``. Lua and the
in-process store must agree bit for bit.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    SamplerConfig,
)
from curriculum_redis.labels import label_hash
from curriculum_redis.state import CurriculumState
from curriculum_redis.store.base import CurriculumStore, Eviction, Outcome, OutcomeBatch
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.tasks import Task

GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")
EVICTED = "num_outcomes_for_evicted_tasks"
HYPERS = LearningProgressConfig(num_active_tasks=6)
TASKS = [Task(i, f"l{i % 3}", {}) for i in range(1, 7)]


@pytest.fixture(params=["memory", "redis"])
def store_factory(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Any]:
    """A factory of stores of one namespace: the same MemoryStore, or a new RedisStore per call."""
    made: list[CurriculumStore] = []
    memory = MemoryStore("ev")

    def factory() -> CurriculumStore:
        store = memory if request.param == "memory" else RedisStore.from_url(redis_url, "ev")
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


def _config() -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(num_active_tasks=4, max_evictions_per_refresh=0),
        namespace="ev",
        buffer=BufferConfig(batch_size=1000, max_age_s=3600.0),
        sampler=SamplerConfig(refresh_every_draws=10_000, refresh_every_s=3600.0),
    )


def test_a_buffered_outcome_whose_task_another_process_evicted_still_counts(store_factory: Any) -> None:
    mine = store_factory()
    cur = Curriculum(_config(), mine)
    task = cur.get_task()
    cur.update_task_performance(task.task_id, 1.0)  # buffered
    cur.update_task_performance(task.task_id, 0.25)
    other = store_factory()  # another process's store
    replacement = Task(10**9, task.label, {})
    assert other.evict_and_replace(Eviction(task.task_id, replacement, "low_score", 0, float("inf"))) == "evicted"
    cur.flush()
    counters = other.counters()
    assert counters["num_completed"] == 2
    assert counters[EVICTED] == 2
    assert counters["num_scheduled"] == 1
    label = other.label_stats()[task.label_hash]
    assert (label.completions, label.successes, label.score_sum, label.samples) == (2, 1, 1.25, 1)
    assert label.lp_ema == 0.0  # follows task scores: no task was updated
    assert other.read_task(task.task_id) is None
    fresh = other.read_task(replacement.task_id)
    assert fresh is not None and fresh.completions == 0
    cur.close()


def _scenario(store: CurriculumStore) -> list[Any]:
    """Live and evicted tasks mixed in batches, failures, a label the namespace never saw."""
    store.attach(HYPERS)
    store.create_tasks(TASKS)
    h = {t.task_id: t.label_hash for t in TASKS}
    results = [store.record(OutcomeBatch(1, 1, [Outcome(t.task_id, t.label_hash, 0.1 * t.task_id) for t in TASKS]))]
    for victim, new in ((2, Task(7, "l0", {})), (5, Task(8, "fresh", {}))):
        assert store.evict_and_replace(Eviction(victim, new, "low_score", 0, float("inf"))) == "evicted"
    never = label_hash("never-created")
    batch = [
        Outcome(2, h[2], 0.9),
        Outcome(3, h[3], 0.7),
        Outcome(5, h[5], 0.0, failed=True),
        Outcome(99, never, 0.6),
        Outcome(2, h[2], 0.3),
        Outcome(7, label_hash("l0"), 0.55),
        Outcome(3, h[3], 0.123456789),
    ]
    results.append(store.record(OutcomeBatch(1, 2, batch, {h[3]: 2, h[2]: 1})))
    results.append(store.record(OutcomeBatch(1, 2, batch)))  # re-sent: applied once
    return results


def test_lua_and_memory_store_count_evicted_outcomes_identically(redis_url: str) -> None:
    memory, on_redis = MemoryStore("mix"), RedisStore.from_url(redis_url, "mix")
    assert _scenario(memory) == _scenario(on_redis)
    results = _scenario(MemoryStore("again"))
    counts = [(r.applied, r.recorded, r.for_evicted_tasks) for r in results]
    assert counts == [(True, 6, 0), (True, 7, 4), (False, 0, 0)]
    counters = on_redis.counters()
    assert counters == memory.counters()
    assert counters["num_completed"] == 13 and counters[EVICTED] == 4 and counters["num_failures"] == 1
    assert counters["num_duplicate_batches"] == 1
    labels = on_redis.label_stats()
    assert labels == memory.label_stats()  # every double, incl. score_sum in outcome order and lp_ema
    # Every outcome but the one of a label the namespace never created is in its label's completions.
    assert sum(s.completions for s in labels.values()) == counters["num_completed"] - 1
    # Label l2: tasks 2 and 5 once each while live, then 2 + 1 outcomes after their eviction.
    assert labels[label_hash("l2")].completions == 5
    assert labels[label_hash("l2")].successes == 2  # 0.5 (task 5, live) and 0.9 (task 2, evicted)
    for task_id in (1, 3, 4, 6, 7, 8):
        assert on_redis.read_task(task_id) == memory.read_task(task_id)
    assert on_redis.read_task(2) is None and on_redis.read_task(99) is None
    on_redis.close()


def test_the_old_counter_name_is_read_as_the_new_one(redis_url: str, redis_client: redis.Redis) -> None:
    store = RedisStore.from_url(redis_url, "old")
    store.attach(HYPERS)
    redis_client.hset("{cr:old}:counters", mapping={"num_outcomes_for_unknown_tasks": 7, "num_completed": 3})
    counters = store.counters()
    assert counters[EVICTED] == 7 and counters["num_completed"] == 3
    assert "num_outcomes_for_unknown_tasks" not in counters
    exported = store.export_state()
    assert exported.counters[EVICTED] == 7
    old = CurriculumState(
        namespace="old", hypers=HYPERS, counters={"num_outcomes_for_unknown_tasks": 5, "num_completed": 10}
    )
    for target in (store, MemoryStore("old")):
        target.import_state(old)
        assert target.counters()[EVICTED] == 5 and target.counters()["num_completed"] == 10
    assert redis_client.hget("{cr:old}:counters", EVICTED) == b"5"
    store.close()


# --------------------------------------------------------------------------- many real processes


def churn_by_label(config_json: str, n_outcomes: int, seed: int) -> dict[str, Any]:
    """Play with eager eviction; return what was reported per label (episodes, successes)."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    rng = np.random.default_rng(seed)
    episodes: dict[int, int] = {}
    successes: dict[int, int] = {}
    for _ in range(n_outcomes):
        task = curriculum.get_task()
        won = bool(rng.random() < 0.3)
        curriculum.update_task_performance(task.task_id, float(won))
        episodes[task.label_hash] = episodes.get(task.label_hash, 0) + 1
        successes[task.label_hash] = successes.get(task.label_hash, 0) + int(won)
    curriculum.close()
    return {"episodes": episodes, "successes": successes}


@pytest.mark.slow
def test_four_processes_with_eager_eviction_lose_no_episode(redis_url: str) -> None:
    payload = CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": list(range(12))}, label="grid"),
        algorithm=LearningProgressConfig(
            num_active_tasks=32, min_presentations_for_eviction=1, eviction_threshold_percentile=1.0,
            max_evictions_per_refresh=8,
        ),
        redis_url=redis_url,
        namespace="eager",
        buffer=BufferConfig(batch_size=64),
        sampler=SamplerConfig(refresh_every_draws=50),
    ).model_dump_json()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(churn_by_label, [(payload, 3000, seed) for seed in range(4)])
    episodes: dict[int, int] = {}
    successes: dict[int, int] = {}
    for result in results:
        for h, n in result["episodes"].items():
            episodes[h] = episodes.get(h, 0) + n
        for h, n in result["successes"].items():
            successes[h] = successes.get(h, 0) + n
    store = RedisStore.from_url(redis_url, "eager")
    counters = store.counters()
    assert counters["num_completed"] == 12_000
    assert counters[EVICTED] > 0, "no outcome met an evicted task: the test did not exercise the race"
    assert counters["num_evicted"] > 100
    labels = store.label_stats()
    assert sum(s.completions for s in labels.values()) == 12_000
    assert {h: s.completions for h, s in labels.items() if s.completions} == episodes
    assert {h: s.successes for h, s in labels.items() if s.completions} == successes
    assert {h: s.score_sum for h, s in labels.items() if s.completions} == {h: float(n) for h, n in successes.items()}
    store.close()
