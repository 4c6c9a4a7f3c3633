"""The fence a drop or an import --replace puts up (lua/fence_namespace.lua), on a real server: creating and
evicting tasks wait while it stands, write nothing meanwhile, and go on when it falls or expires."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from curriculum_redis import LearningProgressConfig, admin
from curriculum_redis.errors import ScriptError, StoreError
from curriculum_redis.store import transfer
from curriculum_redis.store.base import Eviction
from curriculum_redis.store.connection import map_errors
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.scripts import ScriptSet
from curriculum_redis.tasks import Task


def pool(client: redis.Redis, namespace: str, tasks: int = 4) -> RedisStore:
    admin.drop_namespace(client, namespace)
    store = RedisStore(client, namespace)
    store.attach(LearningProgressConfig(num_active_tasks=tasks + 2))
    store.create_tasks([Task(i, "old", {"level": i}) for i in range(1, tasks + 1)])
    return store


def fence(client: redis.Redis, namespace: str, ms: int) -> Any:
    with map_errors("test"):
        return ScriptSet(client)("fence_namespace", [NamespaceKeys(namespace).meta], [ms], read=True)


def raw_evict(client: redis.Redis, keys: NamespaceKeys, victim: int, new: Task) -> Any:
    """evict_and_replace.lua called directly (the store would wait out the fence)."""
    victim_hash = int(client.hget(keys.task(victim), "label_hash") or 0)
    script_keys = [keys.meta, keys.counters, keys.scores, keys.labels, keys.task(victim), keys.task(new.task_id),
                   keys.label(victim_hash), keys.label(new.label_hash)]  # fmt: skip
    args = [victim, victim_hash, new.task_id, new.label_hash, new.label, "low_score", 0, "inf", 1]
    with map_errors("test"):
        return ScriptSet(client)("evict_and_replace", script_keys, args, read=True)


def raw_create(client: redis.Redis, keys: NamespaceKeys, task: Task) -> Any:
    with map_errors("test"):
        return ScriptSet(client)(
            "create_tasks", [keys.meta, keys.counters, keys.scores, keys.labels, keys.task(task.task_id),
                             keys.label(task.label_hash)], [1, task.task_id, task.label_hash, task.label], read=True,
        )  # fmt: skip


def dump(client: redis.Redis, keys: NamespaceKeys) -> dict[str, Any]:
    return {k.decode(): client.dump(k) for k in client.scan_iter(match=keys.pattern)}


def test_a_fenced_namespace_refuses_creating_and_evicting_before_any_write(redis_client: redis.Redis) -> None:
    store = pool(redis_client, "fence-refuses")
    keys = store.keys
    assert fence(redis_client, "fence-refuses", 60_000) == 1
    before = dump(redis_client, keys)
    with pytest.raises(ScriptError, match="CR_FENCED"):
        raw_evict(redis_client, keys, 1, Task(50, "new", {"level": 50}))
    with pytest.raises(ScriptError, match="CR_FENCED"):
        raw_create(redis_client, keys, Task(51, "new", {"level": 51}))
    assert dump(redis_client, keys) == before
    redis_client.hdel(keys.meta, "fence_until_ms")
    assert raw_evict(redis_client, keys, 1, Task(50, "new", {"level": 50})) == b"evicted"
    assert raw_create(redis_client, keys, Task(51, "new", {"level": 51})) == [b"51"]
    store.close()


def test_a_fence_expires_and_never_creates_a_namespace(redis_client: redis.Redis) -> None:
    store = pool(redis_client, "fence-expires")
    assert fence(redis_client, "fence-expires", 50) == 1
    time.sleep(0.1)
    assert raw_evict(redis_client, store.keys, 1, Task(50, "new", {"level": 50})) == b"evicted"
    keys = NamespaceKeys("fence-nowhere")
    redis_client.delete(keys.meta)
    assert fence(redis_client, "fence-nowhere", 1000) == 0
    assert not redis_client.exists(keys.meta)
    with pytest.raises(ScriptError, match="CR_ARGS"):
        fence(redis_client, "fence-expires", 0)
    store.close()


def test_a_worker_skips_evicting_behind_a_fence_and_waits_to_create(redis_client: redis.Redis) -> None:
    """An eviction can wait for the next refresh, so it returns at once (sampling never stalls); creating
    tasks waits the fence out (a process that holds no pool yet has nothing to sample)."""
    store = pool(redis_client, "fence-waits")
    fence(redis_client, "fence-waits", 60_000)
    before = dump(redis_client, store.keys)
    assert store.evict_and_replace(Eviction(1, Task(50, "new", {"level": 50}), min_presentations=0)) == "fenced"
    assert dump(redis_client, store.keys) == before
    lift = threading.Timer(0.2, lambda: redis_client.hdel(store.keys.meta, "fence_until_ms"))
    lift.start()
    started = time.monotonic()
    created = store.create_tasks([Task(60, "new", {"level": 60})])
    waited = time.monotonic() - started
    lift.join()
    assert created == [60]
    assert waited >= 0.19  # it did not go through the fence
    assert store.evict_and_replace(Eviction(1, Task(50, "new", {"level": 50}), min_presentations=0)) == "evicted"
    store.close()


@pytest.mark.parametrize("operation", ["drop", "import"])
def test_evicting_during_a_drop_or_replace_is_held_off(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """A worker's eviction between the SCAN and the EXEC is refused (CR_FENCED), so the WATCH never fails."""
    namespace = f"fence-{operation}"
    store = pool(redis_client, namespace)
    keys = store.keys
    path = tmp_path / "fence.crx"
    admin.export_namespace(redis_client, namespace, path)
    scan, live = transfer.scan_namespace, transfer.live_keys
    refused: list[str] = []
    reads: list[int] = []

    def scan_then_evict(client: redis.Redis, ns: str, pattern: str) -> list[str]:
        found = scan(client, ns, pattern)
        with pytest.raises(ScriptError, match="CR_FENCED") as caught:
            raw_evict(redis_client, keys, 1, Task(60 + len(refused), "new", {"level": 60}))
        refused.append(str(caught.value))
        return found

    def live_then_evict(client: redis.Redis, k: NamespaceKeys, scanned_at: Any) -> list[str]:
        reads.append(1)
        with pytest.raises(ScriptError, match="CR_FENCED"):
            raw_create(redis_client, keys, Task(70, "new", {"level": 70}))
        return live(client, k, scanned_at)

    monkeypatch.setattr(transfer, "scan_namespace", scan_then_evict)
    monkeypatch.setattr(transfer, "live_keys", live_then_evict)
    if operation == "drop":
        assert admin.drop_namespace(redis_client, namespace) > 0
        assert not list(redis_client.scan_iter(match=keys.pattern))
    else:
        admin.import_namespace(redis_client, namespace, path, replace=True)
        assert admin.check_namespace(redis_client, namespace).problems == []
        assert not redis_client.hexists(keys.meta, "fence_until_ms")  # the import's meta has none
    assert refused and reads == [1]  # one transaction: the WATCH never failed
    store.close()


def test_a_failed_replace_lifts_its_fence(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    store = pool(redis_client, "fence-lifted")

    def no_scan(client: redis.Redis, ns: str, pattern: str) -> list[str]:
        raise redis.exceptions.ConnectionError("the server went away")

    monkeypatch.setattr(transfer, "scan_namespace", no_scan)
    with pytest.raises(StoreError):
        admin.drop_namespace(redis_client, "fence-lifted")
    assert redis_client.exists(store.keys.meta) and not redis_client.hexists(store.keys.meta, "fence_until_ms")
    assert store.evict_and_replace(Eviction(1, Task(50, "new", {"level": 50}), min_presentations=0)) == "evicted"
    store.close()


def test_the_pool_is_read_again_only_when_it_changed_since_the_scan(redis_client: redis.Redis) -> None:
    store = pool(redis_client, "fence-live")
    keys = store.keys
    version = redis_client.hget(keys.meta, "pool_version")
    unchanged = transfer.live_keys(redis_client, keys, version)
    assert not any(":task:" in k or ":label:" in k for k in unchanged)  # the SCAN listed them all
    assert keys.scores in unchanged and keys.history in unchanged
    assert store.evict_and_replace(Eviction(1, Task(50, "new", {"level": 50}), min_presentations=0)) == "evicted"
    changed = transfer.live_keys(redis_client, keys, version)
    assert {keys.task(t) for t in (2, 3, 4, 50)} <= set(changed) and keys.task(1) not in changed
    assert keys.label(Task(50, "new", {}).label_hash) in changed
    store.close()
