"""``:scores`` in segments of 1 MiB: attaching allocates one segment at most, whatever the capacity; a pool
spanning several segments reads, writes, evicts, checks, exports, imports and expires like a small one; a
lost segment is refused, never re-created; the one-string layout written before segments is split by
``check --repair``. On a real server: the scripts are what is tested."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from curriculum_redis import LearningProgressConfig
from curriculum_redis.errors import ScriptError, StoreError
from curriculum_redis.integrity import check_namespace
from curriculum_redis.store.base import Eviction, Outcome, OutcomeBatch
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.schema import RECORD_SIZE, SEGMENT_BYTES, SEGMENT_RECORDS
from curriculum_redis.tasks import Task

CAPACITY = 2 * SEGMENT_RECORDS + 116
"""Three segments: two whole, the last of 116 records."""


def pool(url: str, namespace: str, capacity: int, tasks: int | None = None) -> RedisStore:
    store = RedisStore.from_url(url, namespace)
    store.attach(LearningProgressConfig(num_active_tasks=capacity))
    count = capacity if tasks is None else tasks
    created = store.create_tasks([Task(i + 1, f"level-{i % 7}", {}) for i in range(count)])
    assert len(created) == count
    return store


def labelled_outcome(task_id: int, score: float, slot: int = -1) -> Outcome:
    return Outcome(task_id, Task(task_id, f"level-{(task_id - 1) % 7}", {}).label_hash, score, slot=slot)


def outcome(store: RedisStore, task_id: int, score: float, seq: int) -> None:
    slot = store.snapshot().slot_of()[task_id]
    store.record(OutcomeBatch(7, seq, [labelled_outcome(task_id, score, slot)]))


def test_attaching_allocates_one_segment_at_most(redis_client: redis.Redis, redis_url: str) -> None:
    big = RedisStore.from_url(redis_url, "big")
    big.attach(LearningProgressConfig(num_active_tasks=1_000_000))
    small = RedisStore.from_url(redis_url, "small")
    small.attach(LearningProgressConfig(num_active_tasks=100))
    assert redis_client.strlen("{cr:big}:scores") == SEGMENT_BYTES  # not 128 MB
    assert redis_client.strlen("{cr:small}:scores") == 100 * RECORD_SIZE  # as before segments
    assert not list(redis_client.scan_iter("{cr:big}:scores:*"))
    big.close()
    small.close()


def test_a_pool_over_three_segments_reads_writes_evicts_checks_and_expires(
    redis_client: redis.Redis, redis_url: str
) -> None:
    store = pool(redis_url, "wide", CAPACITY)
    keys = NamespaceKeys("wide")
    assert [redis_client.strlen(keys.scores_segment(k)) for k in range(3)] == [
        SEGMENT_BYTES, SEGMENT_BYTES, 116 * RECORD_SIZE
    ]
    assert not redis_client.exists(keys.scores_segment(3))
    snap = store.snapshot()
    assert snap.size == CAPACITY and snap.slots is not None
    np.testing.assert_array_equal(snap.slots, np.arange(CAPACITY))
    np.testing.assert_array_equal(snap.task_ids, np.arange(1, CAPACITY + 1))

    # One batch writes tasks of all three segments, each where its slot says.
    far = [1, SEGMENT_RECORDS + 5, CAPACITY]
    slots = snap.slot_of()
    batch = OutcomeBatch(7, 1, [labelled_outcome(t, 1.0, slots[t]) for t in far for _ in range(3)])
    assert store.record(batch).recorded == 9
    after = store.snapshot()
    completions = dict(zip(after.task_ids.tolist(), after.column("completions").tolist(), strict=True))
    assert [completions[t] for t in far] == [3.0, 3.0, 3.0] and sum(completions.values()) == 9.0
    for t in far:
        record = store.read_task(t)
        assert record is not None and record.completions == 3 and record.slot == slots[t]

    # An outcome sent without its slot finds it through the task hash, in the last segment too.
    lost = OutcomeBatch(7, 2, [labelled_outcome(CAPACITY - 1, 0.0)])
    assert store.record(lost).recorded == 1
    assert store.read_task(CAPACITY - 1).completions == 1  # type: ignore[union-attr]

    # Eviction in the last segment re-checks the victim's score there and writes its replacement in place.
    victim = CAPACITY
    replacement = Task(CAPACITY + 1, "level-new", {})
    result = store.evict_and_replace(Eviction(victim, replacement, "low_score", 1, 1.0, 99))
    assert result == "evicted"
    moved = store.read_task(CAPACITY + 1)
    assert moved is not None and moved.slot == CAPACITY - 1 and store.read_task(victim) is None

    assert check_namespace(redis_client, "wide").ok
    store.touch(600)
    assert all(0 < redis_client.pttl(keys.scores_segment(k)) <= 600_000 for k in range(3))
    store.close()


def test_export_and_import_keep_every_segment(redis_client: redis.Redis, redis_url: str) -> None:
    source = pool(redis_url, "from", CAPACITY, tasks=SEGMENT_RECORDS + 10)
    outcome(source, SEGMENT_RECORDS + 3, 1.0, 1)
    state = source.export_state()
    target = RedisStore.from_url(redis_url, "to")
    target.import_state(state)
    np.testing.assert_array_equal(target.snapshot().records, source.snapshot().records)
    keys = NamespaceKeys("to")
    # :scores whole, segment 1 whole, segment 2 never reached: not written.
    assert redis_client.strlen(keys.scores) == SEGMENT_BYTES
    assert redis_client.strlen(keys.scores_segment(1)) == SEGMENT_BYTES
    assert not redis_client.exists(keys.scores_segment(2))
    assert check_namespace(redis_client, "to").ok
    # Replacing a wider namespace with a narrower state leaves no stale segment behind.
    narrow = pool(redis_url, "narrow", 50)
    target.import_state(narrow.export_state())
    assert not list(redis_client.scan_iter("{cr:to}:scores:*"))
    assert target.snapshot().size == 50 and check_namespace(redis_client, "to").ok
    for store in (source, target, narrow):
        store.close()


def test_a_lost_segment_is_refused_never_recreated(redis_client: redis.Redis, redis_url: str) -> None:
    store = pool(redis_url, "holed", CAPACITY, tasks=SEGMENT_RECORDS + 20)
    keys = NamespaceKeys("holed")
    redis_client.delete(keys.scores_segment(1))
    before = redis_client.hgetall(keys.counters)
    # an outcome of a task whose segment is gone
    with pytest.raises(ScriptError, match=r"CR_CORRUPT.*segment"):
        store.record(OutcomeBatch(7, 1, [labelled_outcome(SEGMENT_RECORDS + 2, 1.0)]))
    # new tasks would land in the middle of the lost segment
    with pytest.raises(ScriptError, match=r"CR_CORRUPT.*segment"):
        store.create_tasks([Task(10**9, "late", {})])
    # an eviction of a task there
    with pytest.raises(ScriptError, match=r"CR_CORRUPT.*segment"):
        store.evict_and_replace(Eviction(SEGMENT_RECORDS + 2, Task(10**9 + 1, "x", {}), "low_score", 0, 1.0, 99))
    assert not redis_client.exists(keys.scores_segment(1))  # nothing re-created it
    assert redis_client.hgetall(keys.counters) == before
    report = check_namespace(redis_client, "holed")
    assert any("pool_size" in p for p in report.problems)  # the records of 20 pooled tasks are gone
    store.close()


def test_a_missing_first_segment_is_refused(redis_client: redis.Redis, redis_url: str) -> None:
    store = pool(redis_url, "headless", 10)
    redis_client.delete("{cr:headless}:scores")
    with pytest.raises(ScriptError, match="CR_CORRUPT"):
        store.create_tasks([Task(99, "x", {})])
    assert not redis_client.exists("{cr:headless}:scores")
    store.close()


def test_a_store_learns_a_capacity_changed_under_it(redis_client: redis.Redis, redis_url: str) -> None:
    store = pool(redis_url, "grown", 100, tasks=10)
    store.snapshot()
    assert store._score_segments() == ["{cr:grown}:scores"]
    # An import replaced the namespace by a wider one: the script asks for its segments (CR_SEGMENTS)
    # before writing anything, and the store learns them and retries.
    redis_client.hset("{cr:grown}:meta", "capacity", CAPACITY)
    outcome(store, 3, 1.0, 1)
    assert len(store._score_segments()) == 3
    assert store.read_task(3).completions == 1  # type: ignore[union-attr]
    store.close()


def test_check_repair_splits_the_layout_written_before_segments(redis_client: redis.Redis, redis_url: str) -> None:
    size = SEGMENT_RECORDS + 300
    store = pool(redis_url, "old", size)
    keys = NamespaceKeys("old")
    whole = redis_client.get(keys.scores) + redis_client.get(keys.scores_segment(1))  # type: ignore[operator]
    redis_client.set(keys.scores, whole)  # what attach.lua wrote before segments: one string of capacity
    redis_client.delete(keys.scores_segment(1))
    again = RedisStore.from_url(redis_url, "old")
    with pytest.raises(StoreError, match="check --repair"):
        again.attach(LearningProgressConfig(num_active_tasks=size))
    report = check_namespace(redis_client, "old", repair=True)
    assert report.repaired and any("before segments" in p for p in report.problems)
    assert redis_client.strlen(keys.scores) == SEGMENT_BYTES
    assert redis_client.strlen(keys.scores_segment(1)) == 300 * RECORD_SIZE
    again.attach(LearningProgressConfig(num_active_tasks=size))
    np.testing.assert_array_equal(again.snapshot().task_ids, np.arange(1, size + 1))
    assert check_namespace(redis_client, "old").ok
    store.close()
    again.close()
