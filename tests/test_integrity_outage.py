"""Issue 13 on real servers: the hot path rides out OOM (maxmemory + noeviction) and READONLY (REPLICAOF)
as an outage, sampling from its snapshot and buffering, and every outcome is written once the server
takes writes again."""

from __future__ import annotations

import time

import pytest
import redis
from redis_servers import ServerFactory

from curriculum_redis import BucketedTaskGenerator, BufferConfig, Curriculum, CurriculumConfig, LearningProgressConfig
from curriculum_redis.config import SamplerConfig
from curriculum_redis.errors import StoreUnavailableError
from curriculum_redis.store.connection import mapped_error

pytestmark = pytest.mark.slow


def make_curriculum(url: str) -> Curriculum:
    return Curriculum(
        CurriculumConfig(
            task_generator=BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid"),
            algorithm=LearningProgressConfig(num_active_tasks=16),
            redis_url=url,
            namespace="outage",
            buffer=BufferConfig(batch_size=8, max_age_s=0.05),
            sampler=SamplerConfig(refresh_every_draws=20),
        )
    )


def play(curriculum: Curriculum, seconds: float) -> int:
    """Episodes for ``seconds`` (the hot path must not raise); how many were reported."""
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 0.5)
        n += 1
        time.sleep(0.001)
    return n


def completed(client: redis.Redis) -> int:
    return int(client.hget("{cr:outage}:counters", "num_completed") or 0)


def test_out_of_memory_is_an_outage_and_nothing_is_lost(fresh_redis_factory: ServerFactory) -> None:
    server = fresh_redis_factory()
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    curriculum = make_curriculum(server.url)
    reported = play(curriculum, 0.3)
    curriculum.flush()
    client.config_set("maxmemory", 1)  # every write is refused with OOM
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("probe", "x")
    during = play(curriculum, 1.5)
    assert curriculum.pending_outcomes > 0
    assert completed(client) == reported
    client.config_set("maxmemory", 0)
    reported += during + play(curriculum, 1.0)
    curriculum.close()
    assert completed(client) == reported
    assert curriculum.refused == {} and curriculum.dropped_outcomes == 0


def test_a_server_turned_replica_is_an_outage_and_nothing_is_lost(
    fresh_redis_factory: ServerFactory,
) -> None:
    primary, other = fresh_redis_factory(), fresh_redis_factory()
    a, b = redis.Redis.from_url(primary.url), redis.Redis.from_url(other.url)
    curriculum = make_curriculum(primary.url)
    reported = play(curriculum, 0.3)
    curriculum.flush()
    # b takes a copy of a, then a becomes b's replica: same data, but read-only (what a failover does).
    # Redis 7 waits repl-diskless-sync-delay (5 s) before a diskless full sync; nothing to wait for here.
    a.config_set("repl-diskless-sync-delay", 0)
    b.replicaof("127.0.0.1", primary.port)
    wait_for_sync(b)
    b.replicaof("NO", "ONE")
    a.replicaof("127.0.0.1", other.port)
    wait_for_sync(a)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        a.set("probe", "x")
    during = play(curriculum, 1.5)
    assert curriculum.pending_outcomes > 0
    a.replicaof("NO", "ONE")
    reported += during + play(curriculum, 1.0)
    curriculum.close()
    assert completed(a) == reported
    assert curriculum.refused == {} and curriculum.dropped_outcomes == 0


def wait_for_sync(client: redis.Redis, timeout_s: float = 60.0) -> None:
    # Generous: a first full sync on a loaded 2-core machine can take seconds (not a timing assertion).
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.info("replication").get("master_link_status") == "up":
            return
        time.sleep(0.05)
    raise AssertionError(f"replication did not start within {timeout_s} s")


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        redis.exceptions.ResponseError("Error running script: @user_script:1: -OOM command not allowed"),
        redis.exceptions.ResponseError("MASTERDOWN Link with MASTER is down"),
    ],
)
def test_write_refusals_of_the_server_are_outages(error: Exception) -> None:
    assert isinstance(mapped_error(error, "here"), StoreUnavailableError)
