"""Finite task spaces: one id per configuration, each held at most once in the pool, on both stores and
with several processes filling the pool at once; evicted configurations come back later."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
from finite_workers import fill_and_run

from curriculum_redis import BufferConfig, ConfigError, Curriculum, CurriculumConfig, LearningProgressConfig
from curriculum_redis.config import SamplerConfig
from curriculum_redis.store.base import Eviction
from curriculum_redis.tasks import BucketedTaskGenerator, SingleTaskGenerator, Span, TaskGenerator, TaskGeneratorSet

CELLS = [{"cell": c, "dist": c % 4} for c in range(20)]


def cells(**kwargs: Any) -> BucketedTaskGenerator:
    return BucketedTaskGenerator(buckets={"start": CELLS}, finite=True, label="maze", **kwargs)


# ------------------------------------------------------------------------------------------ generators


def test_a_finite_generator_enumerates_every_configuration_once() -> None:
    gen = BucketedTaskGenerator(buckets={"size": [4, 8], "seed": Span(0, 2), "mode": ["a", "b"]}, finite=True)
    assert gen.size == 12 and list(gen.task_ids()) == list(range(1, 13))
    configs = [gen.get_task(i).env_cfg for i in gen.task_ids()]
    assert len({tuple(sorted(c.items())) for c in configs}) == 12
    assert configs[0] == {"size": 4, "seed": 0, "mode": "a"} and configs[-1] == {"size": 8, "seed": 2, "mode": "b"}
    assert gen.get_task(2).label == "bucketed:size=4,seed=0,mode=b"
    for bad in (0, 13):
        with pytest.raises(ConfigError, match=r"1\.\.12"):
            gen.get_task(bad)


def test_the_label_can_pool_many_configurations() -> None:
    by_format = cells(label_format="dist={start[dist]}")
    labels = [by_format.get_task(i).label for i in by_format.task_ids()]
    assert sorted(set(labels)) == [f"maze:dist={d}" for d in range(4)] and labels.count("maze:dist=0") == 5
    by_keys = BucketedTaskGenerator(buckets={"row": [0, 1], "col": [0, 1, 2]}, finite=True, label_keys=["row"])
    assert {by_keys.get_task(i).label for i in by_keys.task_ids()} == {"bucketed:row=0", "bucketed:row=1"}
    dotted = BucketedTaskGenerator(buckets={"a.b": [1, 2]}, label_format="b{a_b}")  # infinite works too
    assert dotted.get_task(7).label in ("bucketed:b1", "bucketed:b2")


def test_finite_generators_serialise_and_infinite_ones_dump_as_before() -> None:
    gen = TaskGeneratorSet(
        [cells(label_format="d={start[dist]}"), BucketedTaskGenerator(buckets={"x": [1]}, finite=True)]
    )
    again = TaskGenerator.from_data(gen.model_dump(mode="json"))
    assert again == gen and again.size == 21
    assert [again.get_task(i) for i in (1, 20, 21)] == [gen.get_task(i) for i in (1, 20, 21)]
    assert gen.get_task(21).env_cfg == {"x": 1} and gen.get_task(21).task_id == 21
    infinite = BucketedTaskGenerator(buckets={"x": [1, 2]})
    assert infinite.size is None and set(infinite.model_dump()) == {"kind", "base", "buckets", "label"}
    with pytest.raises(ConfigError, match="not finite"):
        infinite.task_ids()


def test_hand_listed_configurations_each_with_its_own_label_form_a_finite_set() -> None:
    # How a user labels tasks by a function of their config: one finite single-task generator per config.
    starts = [5, 17, 30, 31]
    gen = TaskGeneratorSet([SingleTaskGenerator({"start": s}, label=f"block-{s // 12}", finite=True) for s in starts])
    assert gen.size == 4
    assert [gen.get_task(i).env_cfg["start"] for i in gen.task_ids()] == starts
    assert [gen.get_task(i).label for i in gen.task_ids()] == ["block-0", "block-1", "block-2", "block-2"]
    assert TaskGenerator.from_data(gen.model_dump(mode="json")) == gen
    assert set(SingleTaskGenerator({"a": 1}).model_dump()) == {"kind", "env_cfg", "label"}  # dumps as before
    cur = Curriculum(CurriculumConfig(task_generator=gen, algorithm=LearningProgressConfig(num_active_tasks=64)))
    assert sorted(cur.probabilities()) == [1, 2, 3, 4]  # the whole space, each once
    cur.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BucketedTaskGenerator(buckets={"x": Span(0.0, 1.0)}, finite=True), "Span of floats"),
        (lambda: BucketedTaskGenerator(buckets={"x": [1]}, label_keys=["y"]), "label_keys names no bucket"),
        (lambda: BucketedTaskGenerator(buckets={"x": [1]}, label_format="{y}"), "label_format"),
        (lambda: TaskGeneratorSet([cells(), BucketedTaskGenerator(buckets={"x": [1]})]), "mixes finite"),
        (lambda: TaskGeneratorSet([cells(), cells()], weights=[1, 2]), "weights do not apply"),
    ],
)
def test_bad_finite_options_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------------------------------ the pool


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    yield None if request.param == "memory" else request.getfixturevalue("redis_url")


def config(url: str | None, namespace: str, pool: int, **algorithm: Any) -> CurriculumConfig:
    return CurriculumConfig(
        redis_url=url,
        namespace=namespace,
        task_generator=cells(),
        algorithm=LearningProgressConfig(num_active_tasks=pool, **algorithm),
        buffer=BufferConfig(batch_size=4),
        sampler=SamplerConfig(refresh_every_draws=10, refresh_every_s=None),
    )


def pool_ids(curriculum: Curriculum) -> list[int]:
    return curriculum.store.snapshot().task_ids.tolist()


def test_a_space_that_fits_is_held_whole_and_never_evicted(store_url: str | None) -> None:
    curriculum = Curriculum(config(store_url, "fits", 64, max_consecutive_failures=2, min_presentations_for_eviction=1))
    for _ in range(300):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 0.0)
    curriculum.flush()
    assert sorted(pool_ids(curriculum)) == list(range(1, 21))
    stats = curriculum.stats()
    assert (stats["num_created"], stats["num_evicted"]) == (20, 0)
    curriculum.close()


def test_a_larger_space_holds_distinct_ids_and_evicted_ones_come_back(store_url: str | None) -> None:
    curriculum = Curriculum(
        config(store_url, "larger", 8, max_consecutive_failures=1, min_presentations_for_eviction=1)
    )
    left: set[int] = set()
    returned: set[int] = set()
    held = set()
    for _ in range(400):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 0.0)
        ids = pool_ids(curriculum)
        assert len(ids) == len(set(ids)) <= 8 and all(1 <= i <= 20 for i in ids)
        returned |= set(ids) & left
        left |= held - set(ids)
        held = set(ids)
    assert curriculum.stats()["num_evicted"] > 20
    assert returned, "an evicted configuration was never admitted again"
    curriculum.close()


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize(("pool", "expected"), [(64, 20), (12, 12)])
def test_processes_filling_the_pool_at_once_make_no_duplicate(redis_url: str, pool: int, expected: int) -> None:
    workers = 4
    cfg = config(redis_url, f"race-{pool}", pool, max_evictions_per_refresh=0)
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Manager().Barrier(workers)
    with spawn.Pool(workers) as procs:
        results = [procs.apply_async(fill_and_run, (cfg.model_dump_json(), barrier, 50)) for _ in range(workers)]
        drawn = [r.get(timeout=120) for r in results]
    curriculum = Curriculum(cfg)
    ids = pool_ids(curriculum)
    assert len(ids) == len(set(ids)) == expected
    assert curriculum.stats()["num_created"] == expected
    assert set().union(*drawn) <= set(ids)
    curriculum.close()


def test_the_store_refuses_an_id_it_already_holds(store_url: str | None) -> None:
    curriculum = Curriculum(config(store_url, "refuse", 8))
    curriculum.get_task()
    store, gen = curriculum.store, cells()
    held = pool_ids(curriculum)
    assert store.create_tasks([gen.get_task(i) for i in held]) == []
    victim, other = held[0], held[1]
    eviction = Eviction(victim, gen.get_task(other), "failures", min_failures=0)
    assert store.evict_and_replace(eviction) == "replacement_exists"
    assert sorted(pool_ids(curriculum)) == sorted(held)
    curriculum.close()
