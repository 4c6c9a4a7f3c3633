"""Pool creation never blocks a shared server: a large pool is created in script calls of at most
``CREATE_CHUNK`` tasks each, seen on the wire with MONITOR (times are measured in README, Performance)."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import redis

from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, LearningProgressConfig, admin
from curriculum_redis.store.redis import CREATE_CHUNK
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
