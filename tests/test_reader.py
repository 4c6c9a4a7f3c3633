"""Reading never changes the curriculum (issue 11): ``Curriculum.stats()``, ``label_table()`` and the
read-only functions of ``curriculum_redis.reader`` leave every key of the namespace as it was."""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
import pytest
import redis

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    FrontierConfig,
    LearnabilityConfig,
    LearningProgressConfig,
    PrioritizedReplayConfig,
    SamplerConfig,
    UniformConfig,
)
from curriculum_redis.config import PoolConfig
from curriculum_redis.errors import ConfigError, NamespaceNotFoundError
from curriculum_redis.reader import read_labels, read_stats, read_tasks
from curriculum_redis.store.memory import MemoryStore

SPAWN = multiprocessing.get_context("spawn")
GENERATOR = BucketedTaskGenerator({}, {"level": list(range(6))}, label="grid")
EAGER = {"num_active_tasks": 12, "min_presentations_for_eviction": 1, "eviction_threshold_percentile": 1.0}
ALGORITHMS: dict[str, PoolConfig] = {
    "frontier": FrontierConfig(**EAGER),
    "learning_progress": LearningProgressConfig(**EAGER),
    "prioritized_replay": PrioritizedReplayConfig(**EAGER),
    "learnability": LearnabilityConfig(**EAGER),
    "uniform": UniformConfig(**EAGER, max_evictions_per_refresh=4),
}


def config(url: str | None, namespace: str, algorithm: PoolConfig) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=algorithm,
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=16),
        sampler=SamplerConfig(refresh_every_draws=25),
    )


def write(config_json: str, episodes: int) -> None:
    """The writer process: play ``episodes`` episodes with eager eviction, then leave."""
    with Curriculum(CurriculumConfig.model_validate_json(config_json)) as curriculum:
        rng = np.random.default_rng(0)
        for _ in range(episodes):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, float(rng.random()))


def observe(config_json: str) -> dict[str, Any]:
    """The observer process: a fresh Curriculum's reads, and the reader functions."""
    cfg = CurriculumConfig.model_validate_json(config_json)
    assert cfg.redis_url is not None
    curriculum = Curriculum(cfg)
    first, second = curriculum.stats(), curriculum.stats()
    table = curriculum.label_table()
    curriculum.close()
    client = redis.Redis.from_url(cfg.redis_url)
    try:
        return {
            "stats": [first, second],
            "label_table": table,
            "read_stats": read_stats(client, cfg.namespace),
            "read_labels": read_labels(client, cfg.namespace),
            "read_tasks": read_tasks(client, cfg.namespace),
        }
    finally:
        client.close()


def dump_every_key(client: redis.Redis, namespace: str) -> dict[bytes, tuple[bytes | None, int]]:
    """DUMP (exact serialized value) and remaining TTL of every key of the namespace."""
    keys = sorted(client.scan_iter(match="{cr:" + namespace + "}:*", count=1000))
    return {key: (client.dump(key), client.pttl(key)) for key in keys}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_a_new_process_reading_twice_changes_no_key(name: str, redis_url: str, redis_client: redis.Redis) -> None:
    payload = config(redis_url, f"ro-{name}", ALGORITHMS[name]).model_dump_json()
    with SPAWN.Pool(1) as pool:
        pool.apply(write, (payload, 600))
    before = dump_every_key(redis_client, f"ro-{name}")
    assert len(before) > 12  # meta, counters, scores, labels, clients, tasks, labels' aggregates
    with SPAWN.Pool(1) as pool:
        seen = pool.apply(observe, (payload,))
    assert dump_every_key(redis_client, f"ro-{name}") == before

    first, second = seen["stats"]
    assert first["num_completed"] == second["num_completed"] == 600
    assert first["num_active_tasks"] == 12
    assert second["epoch/num_completed"] == 0.0  # per-reader deltas: nothing happened in between
    local = {"outcomes_dropped_locally"}
    assert {k: v for k, v in first.items() if not k.startswith("epoch/") and k not in local} == seen["read_stats"]
    assert seen["label_table"] == seen["read_labels"]
    assert len(seen["read_tasks"]) == 12
    assert {row["algorithm"] for row in seen["read_tasks"]} == {name}


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_reader_functions_work_for_every_algorithm(name: str, redis_url: str, redis_client: redis.Redis) -> None:
    algorithm = ALGORITHMS[name]
    with Curriculum(config(redis_url, "any", algorithm)) as curriculum:
        for _ in range(200):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, 0.5)
        curriculum.flush()
        expected = curriculum.stats()
        table = curriculum.label_table()
    stats = read_stats(redis_client, "any")
    local = {"outcomes_dropped_locally"}
    assert stats == {k: v for k, v in expected.items() if not k.startswith("epoch/") and k not in local}
    assert stats["num_completed"] == 200 and stats["num_outcomes_for_evicted_tasks"] >= 0
    score_field = curriculum.algorithm.score_field
    assert f"{score_field}/mean" in stats
    labels = read_labels(redis_client, "any")
    assert labels == table
    assert sum(row["completions"] for row in labels.values()) == 200
    assert {"created", "completions", "samples", "sampling_probability", "active_score", "success_rate"} <= set(
        next(iter(labels.values()))
    )
    rows = read_tasks(redis_client, "any", sort=score_field, limit=5)  # type: ignore[arg-type]
    assert len(rows) == 5 and all(row["algorithm"] == name for row in rows)
    assert [row[score_field] for row in rows] == sorted((row[score_field] for row in rows), reverse=True)
    assert abs(sum(row["probability"] for row in read_tasks(redis_client, "any")) - 1.0) < 1e-9
    only = read_tasks(redis_client, "any", label="level=3")
    assert all("level=3" in row["label"] for row in only)
    if name != "learning_progress":
        assert "lp" not in rows[0]
        with pytest.raises(ConfigError, match="cannot sort by 'lp'"):
            read_tasks(redis_client, "any", sort="lp")


def test_reading_a_missing_or_stage_namespace_is_a_specific_error(redis_client: redis.Redis) -> None:
    for read in (read_stats, read_labels, read_tasks):
        with pytest.raises(NamespaceNotFoundError, match="'nowhere' does not exist") as caught:
            read(redis_client, "nowhere")
        assert not caught.value.stage
    redis_client.hset("{cr:staged}:stage:config", "num_stages", 2)
    with pytest.raises(NamespaceNotFoundError, match="stage") as caught:
        read_stats(redis_client, "staged")
    assert caught.value.stage
    assert redis_client.keys("{cr:nowhere}*") == []


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_stats_of_a_namespace_nobody_created_create_nothing(
    name: str, redis_url: str, redis_client: redis.Redis
) -> None:
    # every algorithm: an empty snapshot has no algorithm name, and once got learning progress's columns
    with Curriculum(config(redis_url, "unborn", ALGORITHMS[name])) as curriculum:
        stats = curriculum.stats()
        assert curriculum.label_table() == {}
    assert stats["num_completed"] == 0 and stats["num_active_tasks"] == 0
    assert redis_client.keys("*") == []


def test_reads_use_the_namespace_algorithm_and_keep_a_decoding_client_open(redis_url: str) -> None:
    with Curriculum(config(redis_url, "plr", ALGORITHMS["prioritized_replay"])) as writer:
        for _ in range(50):
            writer.update_task_performance(writer.get_task().task_id, 0.25)
    # A reader whose own config names another algorithm still describes the namespace as it is.
    with Curriculum(config(redis_url, "plr", ALGORITHMS["learning_progress"])) as reader:
        stats = reader.stats()
    assert "score/mean" in stats and "lp/mean" not in stats
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert read_stats(client, "plr")["num_completed"] == 50
        assert client.ping()  # still usable: the reader closes only connections of its own
    finally:
        client.close()


def test_buffered_outcomes_of_the_reader_itself_are_written_before_it_reads() -> None:
    store = MemoryStore("own")
    curriculum = Curriculum(config(None, "own", ALGORITHMS["learning_progress"]), store)
    task = curriculum.get_task()
    curriculum.update_task_performance(task.task_id, 1.0)
    assert curriculum.pending_outcomes == 1
    assert curriculum.stats()["num_completed"] == 1
    assert curriculum.pending_outcomes == 0
    created = store.counters()["num_created"]
    curriculum.stats()
    curriculum.label_table()
    assert store.counters()["num_created"] == created  # reads refreshed nothing
