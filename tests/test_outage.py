"""An unreachable or restarting Redis: workers keep sampling from their snapshot, buffer their outcomes
and write them once the server is back; nothing is counted twice or half-written."""

from __future__ import annotations

import logging
import multiprocessing
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from outage_workers import sample_through_outage

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    SamplerConfig,
    StoreUnavailableError,
)
from curriculum_redis.algorithms import get_algorithm
from curriculum_redis.demo.binaries import free_port
from curriculum_redis.demo.server import EmbeddedRedis
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")
GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")
N_WORKERS = 4
OUTAGE_S = 3.0


def make_config(url: str, namespace: str, buffer: BufferConfig | None = None, **sampler: Any) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        # No eviction: every outcome is then for a task in the pool, so counts are exact.
        algorithm=LearningProgressConfig(num_active_tasks=16, max_evictions_per_refresh=0),
        redis_url=url,
        namespace=namespace,
        buffer=buffer or BufferConfig(batch_size=16, max_age_s=0.2),
        sampler=SamplerConfig(**{"refresh_every_draws": 100, "refresh_every_s": 0.5, **sampler}),
    )


def run_workers_through_outage(
    server: EmbeddedRedis, namespace: str, take_down: Callable[[], None]
) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    """Start the workers, take the server down once they all run, restart it after ``OUTAGE_S`` and
    collect what each worker saw. Returns the results and the window during which Redis was down."""
    config_json = make_config(server.url, namespace).model_dump_json()
    warmed_up = [SPAWN.Event() for _ in range(N_WORKERS)]
    restarted = SPAWN.Event()
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=sample_through_outage, args=(config_json, seed, warmed_up[seed], restarted, results))
        for seed in range(N_WORKERS)
    ]
    for worker in workers:
        worker.start()
    try:
        for worker, event in zip(workers, warmed_up, strict=True):
            while not event.wait(0.1):
                assert worker.is_alive(), f"a worker died before the outage (exit code {worker.exitcode})"
        take_down()
        down_from = time.time()
        time.sleep(OUTAGE_S)
        down_until = time.time()
        server.restart()  # from the AOF in the same data directory
        restarted.set()
        out = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
    finally:
        restarted.set()
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
    for result in out:
        assert result["error"] is None, result
    return out, (down_from, down_until)


def assert_consistent(client: redis.Redis, namespace: str) -> dict[str, int]:
    """No half-applied script: the task hashes, the packed records, the label aggregates, the pool size
    and the counters agree with each other (true after every script call, hence after any AOF prefix)."""
    store = RedisStore(client, namespace)
    k = NamespaceKeys(namespace)
    snap = store.snapshot()
    counters = store.counters()
    pool = snap.task_ids.tolist()
    assert int(client.hget(k.meta, "pool_size")) == len(pool) == 16
    task_keys = {key.decode() for key in client.scan_iter(match=k.pattern) if b":task:" in key}
    assert task_keys == {k.task(task_id) for task_id in pool}  # no orphan task hash
    for row in snap.records.tolist():
        fields = client.hgetall(k.task(int(row[0])))
        for name, value in zip(get_algorithm("learning_progress").snapshot_fields()[1:], row[1:], strict=True):
            if name.startswith("unused_"):
                continue  # a record slot the algorithm does not use: not in the hash
            assert float(fields[name.encode()]) == value, (row[0], name)
    assert sum(int(c) for c in snap.column("completions")) == counters["num_completed"]
    assert counters["num_created"] == len(pool) and counters["num_evicted"] == 0
    stats = store.label_stats()
    assert sum(s.completions for s in stats.values()) == counters["num_completed"]
    active = Counter(snap.label_hashes.tolist())
    assert {h: s.active for h, s in stats.items() if s.active} == dict(active)
    return counters


def draws_while_down(result: dict[str, Any], window: tuple[float, float]) -> int:
    return sum(window[0] <= t <= window[1] for t in result["draws"])


def test_workers_keep_sampling_through_a_restart_and_every_outcome_is_written_once(
    fresh_redis_factory: Any,
) -> None:
    server = fresh_redis_factory(persistence="aof")
    results, window = run_workers_through_outage(server, "outage", server.stop)  # graceful: the AOF is complete

    for result in results:
        assert draws_while_down(result, window) > 0, "get_task() stopped while Redis was down"
        assert result["dropped"] == 0 and result["pending"] == 0
    reported = sum(result["reported"] for result in results)
    client = redis.Redis.from_url(server.url)
    counters = assert_consistent(client, "outage")
    assert counters["num_outcomes_for_evicted_tasks"] == 0
    assert counters["num_completed"] == reported  # none lost, none applied twice
    client.close()


def test_a_crash_in_the_middle_of_the_run_leaves_no_half_written_state(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="aof")
    results, window = run_workers_through_outage(server, "crash", server.kill)  # SIGKILL

    for result in results:
        assert draws_while_down(result, window) > 0
        assert result["dropped"] == 0 and result["pending"] == 0
    reported = sum(result["reported"] for result in results)
    client = redis.Redis.from_url(server.url)
    counters = assert_consistent(client, "crash")
    # appendfsync everysec may lose the last second before the crash, never add anything.
    assert counters["num_completed"] <= reported
    assert counters["num_completed"] > 0
    client.close()


def test_a_bounded_buffer_drops_the_oldest_batches_counts_them_and_warns(
    fresh_redis_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = fresh_redis_factory(persistence="aof")
    buffer = BufferConfig(batch_size=4, max_age_s=60.0, max_pending_outcomes=20)
    curriculum = Curriculum(make_config(server.url, "bounded", buffer, refresh_every_draws=10**6, refresh_every_s=3600))
    curriculum.get_task()  # attached, snapshot loaded
    server.stop()
    with caplog.at_level(logging.WARNING, logger="curriculum_redis"):
        for _ in range(200):
            curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    dropped = curriculum.dropped_outcomes
    assert dropped > 0 and dropped % 4 == 0  # whole batches
    assert curriculum.pending_outcomes == 200 - dropped <= 20
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("store unreachable" in message for message in messages)
    assert any("dropped the oldest batch" in message and "max_pending_outcomes=20" in message for message in messages)

    server.restart()
    assert curriculum.stats()["outcomes_dropped_locally"] == dropped
    curriculum.close()
    counters = RedisStore.from_url(server.url, "bounded").counters()
    assert counters["num_completed"] == 200 - dropped  # the newest were kept and written once


def test_an_unreachable_redis_at_start_names_host_and_port_but_not_the_password() -> None:
    port = free_port()
    config = make_config(f"redis://user:secret@127.0.0.1:{port}/0", "down")
    curriculum = Curriculum(config)
    with pytest.raises(StoreUnavailableError) as caught:
        curriculum.get_task()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    whole_report = "".join(traceback.format_exception(caught.value))  # chained exceptions included
    assert "secret" not in whole_report
    assert "user:***@" in message
