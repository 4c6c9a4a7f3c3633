"""Issue 13 on a real server with worker processes: drop and import --replace are atomic with respect to
workers creating and evicting tasks, so neither leaves orphan task hashes or miscounted labels."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import redis
from integrity_workers import churn_through_drops
from workers import churn

from curriculum_redis import BucketedTaskGenerator, BufferConfig, CurriculumConfig, LearningProgressConfig, admin
from curriculum_redis.config import SamplerConfig

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")


def config_json(url: str, namespace: str) -> str:
    return CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": list(range(12))}, label="grid"),
        algorithm=LearningProgressConfig(
            num_active_tasks=24,
            min_presentations_for_eviction=1,
            eviction_threshold_percentile=1.0,
            max_evictions_per_refresh=8,
        ),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=8),
        sampler=SamplerConfig(refresh_every_draws=50),
    ).model_dump_json()


def test_drop_and_import_replace_during_churn_leave_no_orphans(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    payload = config_json(redis_url, "busy")
    churn(payload, 300, 99)  # a namespace to export
    path = tmp_path / "busy.crx"
    admin.export_namespace(redis_client, "busy", path)
    drops = imports = 0
    with SPAWN.Pool(3) as pool:
        running = pool.starmap_async(churn_through_drops, [(payload, 4000, seed) for seed in range(3)])
        while not running.ready():
            admin.drop_namespace(redis_client, "busy")
            drops += 1
            time.sleep(0.05)
            admin.import_namespace(redis_client, "busy", path, replace=True)
            imports += 1
            time.sleep(0.05)
        empty = sum(running.get(timeout=300))
    assert drops > 3 and imports > 3
    assert empty == 0  # a refresh that finds the pool dropped keeps sampling the last one
    report = admin.check_namespace(redis_client, "busy")
    assert not [p for p in report.problems if "orphan" in p or "active=" in p or "missing" in p], report.problems
