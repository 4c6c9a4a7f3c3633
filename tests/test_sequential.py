"""The sequential algorithm: chosen by config like every other, on the one engine, in memory or in Redis."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest
import redis
from pydantic import ValidationError
from workers import report_outcomes

from curriculum_redis import (
    BucketedTaskGenerator,
    ConfigError,
    Curriculum,
    CurriculumConfig,
    HyperparameterMismatchError,
    admin,
    reader,
)
from curriculum_redis.algorithms.sequential import SequentialConfig, StageConfig
from curriculum_redis.state import CurriculumState
from curriculum_redis.store.memory import MemoryStore

STAGES = SequentialConfig(
    stages=[
        StageConfig(name="easy", env_cfg={"level": 1}, window=10, stop_condition="episodes>=40 & success>0.3"),
        StageConfig(name="medium", env_cfg={"level": 2}, stop_condition="episodes>=40"),
        StageConfig(name="hard", env_cfg={"level": 3}),
    ]
)


def sequential_config(url: str | None, namespace: str = "seq") -> CurriculumConfig:
    return CurriculumConfig(algorithm=STAGES, redis_url=url, namespace=namespace)


def test_the_config_names_the_algorithm_and_round_trips_through_json() -> None:
    config = sequential_config("redis://localhost:6379/0")
    text = config.model_dump_json()
    assert '"algorithm":"sequential"' in text
    assert CurriculumConfig.model_validate_json(text) == config


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "memory" else str(request.getfixturevalue("redis_url"))


def test_curriculum_of_a_sequential_config_is_a_curriculum(url: str | None) -> None:
    with Curriculum(sequential_config(url)) as curriculum:
        assert type(curriculum) is Curriculum
        assert curriculum.get_task().label == "easy"


def test_sequential_runs_in_one_process_without_redis() -> None:
    with Curriculum(sequential_config(None)) as curriculum:
        assert isinstance(curriculum.store, MemoryStore)
        for _ in range(40):
            curriculum.update_task_performance(curriculum.get_task().task_id, 1.0)
        curriculum.flush()
        curriculum.refresh()
        assert curriculum.get_task().label == "medium"
        stats = curriculum.stats()
    assert stats["stage/index"] == 1 and stats["stage/easy/episodes"] == 40 and stats["stage/advancements"] == 1


def test_sequential_has_hypers_and_store(url: str | None) -> None:
    with Curriculum(sequential_config(url, "hypers")) as curriculum:
        assert curriculum.hypers == STAGES and curriculum.algorithm.name == "sequential"
        assert curriculum.store.namespace == "hypers"
        assert curriculum.probabilities() == {}
        assert curriculum.client_id > 0


def test_stages_advance_through_the_same_api_as_any_curriculum(url: str | None) -> None:
    with Curriculum(sequential_config(url)) as curriculum:
        labels = []
        for _ in range(120):
            task = curriculum.get_task()
            labels.append(task.label)
            curriculum.update_task_performance(task.task_id, 1.0)
            curriculum.flush()
        table = curriculum.label_table()
    assert labels[:40] == ["easy"] * 40 and labels[40:80] == ["medium"] * 40 and set(labels[80:]) == {"hard"}
    assert table["easy"]["episodes"] == 40 and table["medium"]["episodes"] == 40


def test_a_failed_task_counts_as_a_failed_episode(url: str | None) -> None:
    with Curriculum(sequential_config(url, "failures")) as curriculum:
        curriculum.report_task_failure(curriculum.get_task().task_id)
        curriculum.flush()
        expected = {"episodes": 1.0, "successes": 0.0, "success_rate": 0.0, "stale": 0.0}
        assert curriculum.label_table()["easy"] == expected


def test_it_pickles_into_a_worker_and_back(redis_url: str) -> None:
    curriculum = Curriculum(sequential_config(redis_url, "pickled"))
    clone = pickle.loads(pickle.dumps(curriculum))
    assert type(clone) is Curriculum and clone.get_task().label == "easy"
    clone.close()
    curriculum.close()


def test_bad_uses_are_refused_clearly(redis_url: str) -> None:
    with pytest.raises(ValidationError, match="task_generator is required"):
        CurriculumConfig(redis_url=redis_url)
    config = CurriculumConfig(task_generator=BucketedTaskGenerator({}, {"x": [1]}))
    assert config.generator.get_task(1).env_cfg == {"x": 1}
    with pytest.raises(ConfigError, match="needs a task_generator"):
        _ = sequential_config(redis_url).generator


@pytest.mark.slow  # real processes
def test_four_processes_record_every_episode_exactly_once(redis_url: str) -> None:
    payload = sequential_config(redis_url, "seq-4").model_dump_json()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(report_outcomes, [(payload, 300, seed) for seed in range(4)])
    with Curriculum(CurriculumConfig.model_validate_json(payload)) as reader:
        stats = reader.stats()
    assert stats["stage/recorded_episodes"] == 1200
    assert stats["stage/index"] == 2 and stats["stage/advancements"] == 2
    reported = {label: 0 for label in ("easy", "medium", "hard")}
    for result in results:
        for task_id, count in result["per_task"].items():
            reported[result["labels"][task_id]] += count
    assert sum(reported.values()) == 1200
    # Each advancing stage kept exactly its stop condition's episodes; the rest of its episodes are stale.
    assert stats["stage/medium/episodes"] == 40
    assert stats["stage/easy/episodes"] + stats["stage/easy/stale"] == reported["easy"]
    assert stats["stage/medium/episodes"] + stats["stage/medium/stale"] == reported["medium"]


def test_sequential_get_state_round_trips(url: str | None) -> None:
    config = sequential_config(url, "checkpoint")
    with Curriculum(config) as curriculum:
        for success in [1.0] * 40 + [0.0] * 3:
            curriculum.update_task_performance(curriculum.get_task().task_id, success)
        state = curriculum.get_state()
        before = curriculum.stats()
        assert state.stage is not None and state.stage.stage["index"] == "1"
        again = CurriculumState.model_validate_json(state.model_dump_json())
        for _ in range(10):
            curriculum.update_task_performance(curriculum.get_task().task_id, 1.0)
        curriculum.load_state(again)
        after = curriculum.stats()
        assert curriculum.get_task().label == "medium"
    assert {k: v for k, v in after.items() if k != "stage/version"} == {
        k: v for k, v in before.items() if k != "stage/version"
    }
    with Curriculum(sequential_config(url, "restored")) as other:
        other.load_state(state)
        restored = other.stats()
    assert restored["stage/index"] == 1 and restored["stage/easy/episodes"] == 40
    assert restored["stage/easy/stale"] == before["stage/easy/stale"]


def test_a_namespace_keeps_its_algorithm_whatever_the_shape_of_its_state(redis_url: str) -> None:
    """A pool namespace refuses stages and a stage namespace refuses a pool, with the pool's own error:
    stage_init.lua reads the algorithm in meta as attach.lua does."""
    pool = CurriculumConfig(task_generator=BucketedTaskGenerator({}, {"level": [1, 2]}), redis_url=redis_url,
                            namespace="pool")  # fmt: skip
    with Curriculum(pool) as curriculum:
        curriculum.get_task()
    name = pool.algorithm.algorithm
    with pytest.raises(HyperparameterMismatchError, match=f"algorithm: stored='{name}' given='sequential'"):
        Curriculum(sequential_config(redis_url, "pool")).get_task()
    with Curriculum(sequential_config(redis_url, "stages")) as curriculum:
        curriculum.get_task()
    with pytest.raises(HyperparameterMismatchError, match=f"algorithm: stored='sequential' given='{name}'"):
        Curriculum(pool.model_copy(update={"namespace": "stages"})).get_task()


def test_the_readers_describe_a_sequential_namespace_as_the_curriculum_does(redis_url: str) -> None:
    with Curriculum(sequential_config(redis_url, "read")) as curriculum:
        for _ in range(45):
            curriculum.update_task_performance(curriculum.get_task().task_id, 1.0)
        curriculum.flush()
        stats, labels = curriculum.stats(), curriculum.label_table()
    client = redis.Redis.from_url(redis_url)
    try:
        before = {key: client.dump(key) for key in client.scan_iter(match="{cr:read}:*")}
        read = reader.read_stats(client, "read")
        assert read == {name: value for name, value in stats.items() if name != "outcomes_dropped_locally"}
        assert reader.read_labels(client, "read") == labels
        assert reader.read_tasks(client, "read") == []  # a sequential curriculum keeps no task pool
        report = reader.stage_state(client, "read")
        assert (report.index, report.names, report.stats) == (1, ["easy", "medium", "hard"], read)
        assert {key: client.dump(key) for key in client.scan_iter(match="{cr:read}:*")} == before  # read-only
        assert admin.reset_stage(client, "read", 0) == 2
        assert reader.stage_state(client, "read").index == 0
    finally:
        client.close()
