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
from curriculum_redis.store import transfer
from curriculum_redis.store.base import Eviction
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.tasks import Task

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


@pytest.mark.slow
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


@pytest.mark.parametrize("operation", ["drop", "import"])
def test_what_workers_create_while_the_scan_runs_is_replaced_too(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The SCAN runs before the WATCH (on a server holding many namespaces it takes long enough for busy
    workers to win every race with it): tasks and labels created after it began are still deleted, should
    the fence have expired meanwhile."""
    namespace = f"scan-race-{operation}"
    admin.drop_namespace(redis_client, namespace)
    hypers = LearningProgressConfig(num_active_tasks=4)
    store = RedisStore(redis_client, namespace)
    store.attach(hypers)
    store.create_tasks([Task(i, "old", {"level": i}) for i in range(1, 5)])
    path = tmp_path / "scan-race.crx"
    admin.export_namespace(redis_client, namespace, path)
    scan = transfer.scan_namespace
    created: list[int] = []

    def scan_then_a_worker_evicts(client: redis.Redis, ns: str, pattern: str) -> list[str]:
        found = scan(client, ns, pattern)
        # The fence expired (a SCAN longer than FENCE_MS), and every SCAN loses a race: a worker replaces a
        # task, the new one under a label the scan never saw (a WATCH held across the SCAN failed like this
        # 50 times in a row: "kept changing").
        redis_client.hdel(NamespaceKeys(namespace).meta, "fence_until_ms")
        victim = created[-1] if created else 1
        new = Task(100 + len(created), "new-label", {"level": 100 + len(created)})
        assert store.evict_and_replace(Eviction(victim, new, min_presentations=0)) == "evicted"
        created.append(new.task_id)
        return found

    monkeypatch.setattr(transfer, "scan_namespace", scan_then_a_worker_evicts)
    if operation == "drop":
        admin.drop_namespace(redis_client, namespace)
        left = [k.decode() for k in redis_client.scan_iter(match=NamespaceKeys(namespace).pattern)]
        assert left == []
    else:
        admin.import_namespace(redis_client, namespace, path, replace=True)
        report = admin.check_namespace(redis_client, namespace)
        assert report.problems == []
        assert not redis_client.exists(*(NamespaceKeys(namespace).task(t) for t in created))
        assert redis_client.exists(*(NamespaceKeys(namespace).task(t) for t in (1, 2, 3, 4))) == 4
        assert set(redis_client.hvals(NamespaceKeys(namespace).labels)) == {b"old"}
    assert 1 <= len(created) <= 3  # one SCAN per pattern, never repeated
    store.close()
