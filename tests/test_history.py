"""The run's history in Redis (lua/include_history.lua, curriculum_redis.history): one entry per crossing
of the shared episode clock, whoever crosses it, on a real server and with real processes."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
import redis

from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, LearningProgressConfig, admin
from curriculum_redis.config import BufferConfig, SamplerConfig
from curriculum_redis.errors import ConfigError, NamespaceNotFoundError
from curriculum_redis.history import read_history, read_interval, set_interval
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.schema import HISTORY_EVERY
from tests.workers import report_outcomes

pytestmark = pytest.mark.redis

GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")
SPAWN = multiprocessing.get_context("spawn")


def make_config(url: str, namespace: str, batch: int = 8) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(num_active_tasks=8, min_presentations_for_eviction=3),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=batch),
        seed=1,  # unseeded, a pool of 8 random tasks over 4 labels sometimes never drew one label
        sampler=SamplerConfig(refresh_every_s=None),  # refreshes by draw count only: the same run on a loaded machine
    )


def play(curriculum: Curriculum, n: int, seed: int = 0) -> None:
    for i in range(n):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, ((i * 7 + seed) % 10) / 10)
    curriculum.flush()


def attached(url: str, namespace: str, every: int | None) -> None:
    with Curriculum(make_config(url, namespace)) as curriculum:
        curriculum.stats()
        curriculum.get_task()
    client = redis.Redis.from_url(url)
    if every is not None:
        set_interval(client, namespace, every)
    client.close()


def test_one_entry_per_crossing_with_the_run_s_totals(redis_url: str, redis_client: redis.Redis) -> None:
    attached(redis_url, "hist1", 50)
    with Curriculum(make_config(redis_url, "hist1")) as curriculum:
        play(curriculum, 500)
    history = read_history(redis_client, "hist1")
    crossed = [p.episode // 50 for p in history.points]
    assert crossed == list(range(1, 11)), crossed  # each multiple of 50 once, batches of 8
    last = history.points[-1]
    assert last.counters["num_completed"] == last.episode == 500
    store = RedisStore.from_url(redis_url, "hist1")
    stats = store.label_stats()
    for h, totals in last.labels.items():
        assert totals.completions == stats[h].completions
        assert totals.samples == stats[h].samples
        assert totals.score_sum == pytest.approx(stats[h].score_sum)
    store.close()
    shares = history.share()
    assert len(shares) == 4
    for column in zip(*shares.values(), strict=True):
        assert sum(column) == pytest.approx(1.0)
    assert all(0 <= s <= 1 for v in history.success().values() for s in v if s is not None)
    assert len(history.churn()) == len(history.episodes) == 9
    assert read_interval(redis_client, "hist1") == 50


def test_interval_zero_writes_nothing_and_the_default_is_the_schema_s(
    redis_url: str, redis_client: redis.Redis
) -> None:
    attached(redis_url, "hist0", 0)
    with Curriculum(make_config(redis_url, "hist0")) as curriculum:
        play(curriculum, 300)
    assert redis_client.xlen(NamespaceKeys("hist0").history) == 0
    attached(redis_url, "histd", None)
    assert read_interval(redis_client, "histd") == HISTORY_EVERY


def test_set_interval_refuses_a_missing_namespace_and_a_bad_value(redis_client: redis.Redis) -> None:
    with pytest.raises(NamespaceNotFoundError):
        set_interval(redis_client, "nowhere", 10)
    with pytest.raises(ConfigError):
        set_interval(redis_client, "nowhere", -1)


@pytest.mark.slow
def test_four_processes_write_one_entry_per_crossing_of_the_shared_clock(
    redis_url: str, redis_client: redis.Redis
) -> None:
    attached(redis_url, "hist4", 100)
    payload = make_config(redis_url, "hist4").model_dump_json()
    with SPAWN.Pool(4) as pool:
        pool.starmap(report_outcomes, [(payload, 1000, seed) for seed in range(4)])
    history = read_history(redis_client, "hist4")
    assert [p.episode // 100 for p in history.points] == list(range(1, 41))
    assert history.points[-1].counters["num_completed"] == 4000


def test_history_survives_export_and_import(redis_url: str, redis_client: redis.Redis, tmp_path: Any) -> None:
    attached(redis_url, "histx", 40)
    with Curriculum(make_config(redis_url, "histx")) as curriculum:
        play(curriculum, 200)
    before = read_history(redis_client, "histx")
    assert len(before) == 5
    path = tmp_path / "histx.crstate"
    admin.export_namespace(redis_client, "histx", path)
    admin.import_namespace(redis_client, "histy", path)
    after = read_history(redis_client, "histy")
    assert after.points == before.points
    assert read_interval(redis_client, "histy") == 40
    with Curriculum(make_config(redis_url, "histy")) as curriculum:  # the imported run goes on
        play(curriculum, 40)
    assert read_history(redis_client, "histy").points[-1].episode // 40 == 6


def test_history_survives_a_restart_from_rdb(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="rdb")
    attached(server.url, "rdb", 40)
    with Curriculum(make_config(server.url, "rdb")) as curriculum:
        play(curriculum, 200)
    client = redis.Redis.from_url(server.url)
    before = read_history(client, "rdb")
    admin.snapshot(client)
    client.close()
    server.kill()
    server.restart()
    client = redis.Redis.from_url(server.url)
    assert read_history(client, "rdb").points == before.points and len(before) == 5
    client.close()
