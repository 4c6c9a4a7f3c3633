"""Large pools never block a shared server: a pool is created in script calls of at most ``CREATE_CHUNK``
tasks each, and a snapshot is read in chunks of at most ``SNAPSHOT_CHUNK_BYTES``, seen on the wire with
MONITOR (times are measured in README, Performance)."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
import pytest
import redis

from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, LearningProgressConfig, admin
from curriculum_redis.store.chunks import read_rest
from curriculum_redis.store.redis import CREATE_CHUNK, RedisStore
from curriculum_redis.store.schema import RECORD_SIZE
from curriculum_redis.store.scripts import source_of

STOP = "test-bounded-scripts-stop"


def monitored(url: str) -> tuple[list[list[str]], threading.Thread, threading.Event]:
    """Collect every command the server runs, as argument lists, until ``ECHO STOP`` goes by."""
    commands: list[list[str]] = []
    ready = threading.Event()

    def collect() -> None:
        client = redis.Redis.from_url(url, decode_responses=True)
        with client.monitor() as monitor:
            ready.set()
            for event in monitor.listen():
                words = event["command"].split(" ")
                if words[:2] == ["ECHO", STOP]:
                    break
                commands.append(words)
        client.close()

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    assert ready.wait(10)
    return commands, thread, ready


def create_calls(commands: list[list[str]]) -> list[int]:
    """Tasks per create_tasks call: its EVALSHA passes 4 + 2 keys per task."""
    sha = hashlib.sha1(source_of("create_tasks").encode()).hexdigest()
    return [(int(words[2]) - 4) // 2 for words in commands if words[0].upper() == "EVALSHA" and words[1] == sha]


def test_a_large_pool_is_created_in_calls_of_at_most_create_chunk_tasks(redis_url: str) -> None:
    size = 3 * CREATE_CHUNK + 5
    config = CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": list(range(10))}, label="lvl"),
        algorithm=LearningProgressConfig(num_active_tasks=size),
        redis_url=redis_url,
        namespace="big",
    )
    root = redis.Redis.from_url(redis_url)
    admin.load_scripts(root)  # no NOSCRIPT, whose retried EVALSHA would show twice
    commands, thread, _ = monitored(redis_url)
    with Curriculum(config) as curriculum:
        curriculum.get_task()
        stats: dict[str, Any] = curriculum.stats()
    root.echo(STOP)
    thread.join(10)
    assert not thread.is_alive()
    calls = create_calls(commands)
    assert calls == [CREATE_CHUNK] * 3 + [5]  # every task in a chunk; the pool was empty
    assert stats["num_active_tasks"] == size and int(root.hget("{cr:big}:counters", "num_created")) == size
    assert int(root.hget("{cr:big}:meta", "pool_size")) == size
    root.close()


def test_a_large_snapshot_is_read_in_bounded_chunks_and_equals_the_whole(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 tasks, chunks of 3 records: the script returns the first 3, then 13 GETRANGEs of at most 3 records.
    config = CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": list(range(40))}, label="lvl", finite=True),
        algorithm=LearningProgressConfig(num_active_tasks=40),
        redis_url=redis_url,
        namespace="chunked",
    )
    with Curriculum(config) as curriculum:
        for i in range(200):
            curriculum.update_task_performance(curriculum.get_task().task_id, float(i % 3 == 0))
        curriculum.flush()
    store = RedisStore.from_url(redis_url, "chunked")
    whole = store.snapshot()
    chunk = 3 * RECORD_SIZE
    monkeypatch.setattr("curriculum_redis.store.redis.SNAPSHOT_FIRST_BYTES", chunk)
    monkeypatch.setattr("curriculum_redis.store.redis.SNAPSHOT_CHUNK_BYTES", chunk)
    root = redis.Redis.from_url(redis_url)
    commands, thread, _ = monitored(redis_url)
    chunked = store.snapshot()
    root.echo(STOP)
    thread.join(10)
    assert chunked.pool_version == whole.pool_version and chunked.episode_clock == whole.episode_clock
    np.testing.assert_array_equal(chunked.records, whole.records)
    assert chunked.size == 40
    ranges = [(int(words[2]), int(words[3])) for words in commands if words[0].upper() == "GETRANGE"]
    # the script's own read of records 0..2, then records 3..39, 3 at a time, each its own command
    assert len(ranges) == 14 and ranges[:2] == [(0, chunk - 1), (chunk, 2 * chunk - 1)]
    assert all(end - start + 1 <= chunk for start, end in ranges)
    store.close()
    root.close()


def test_reading_the_rest_stops_where_a_shrinking_string_ends(redis_url: str) -> None:
    root = redis.Redis.from_url(redis_url)
    root.set("chunks-test", b"x" * 100)
    assert read_rest(root, "chunks-test", 10, 100, chunk=30) == b"x" * 90
    assert read_rest(root, "chunks-test", 10, 250, chunk=30) == b"x" * 90  # the string is shorter than said
    root.delete("chunks-test")
    assert read_rest(root, "chunks-test", 0, 100, chunk=30) == b""
    root.close()
