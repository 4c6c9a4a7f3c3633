"""Many real processes sharing one curriculum through a real redis-server: exact counts, no lock."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import socket
import threading
import time
from typing import Any

import numpy as np
import pytest
import redis
from workers import churn, evict_same_victims, read_visible_state, report_outcomes, run_until_killed

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    SamplerConfig,
)
from curriculum_redis.algorithms import get_algorithm
from curriculum_redis.algorithms.learning_progress import TaskState, apply_outcome
from curriculum_redis.labels import label_hash
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.scripts import record_source, script_sources
from curriculum_redis.tasks import Task

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")
LP_DTYPE = get_algorithm("learning_progress").dtype()
GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")


def config_json(url: str, namespace: str, *, batch_size: int = 64, **algorithm: Any) -> str:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(**algorithm),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=batch_size),
        sampler=SamplerConfig(refresh_every_draws=200),
    ).model_dump_json()


class MonitorLog:
    """Every command the server executes, in execution order, read from a raw MONITOR connection."""

    ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.lines: list[bytes] = []
        self._buffer = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                break
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\r\n")
            self.lines.extend(complete)

    def stop(self) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        self.sock.close()

    @staticmethod
    def unescape(raw: bytes) -> str:
        return raw.decode("unicode_escape")

    def commands(self, name: str) -> list[list[str]]:
        out = []
        for line in self.lines:
            args = [self.unescape(a) for a in self.ARG.findall(line)]
            if args and args[0].upper() == name and "lua]" not in line.decode(errors="replace"):
                out.append(args)
        return out


def replay(evalsha_calls: list[list[str]], sha: str, cfg: LearningProgressConfig) -> dict[int, TaskState]:
    """Re-apply every recorded outcome with the Python reference, in the order Redis applied the batches."""
    states: dict[int, TaskState] = {}
    seen: set[tuple[str, str]] = set()
    for call in evalsha_calls:
        if call[1] != sha:
            continue
        numkeys = int(call[2])
        args = call[3 + numkeys :]
        if (args[0], args[1]) in seen:
            continue  # a re-sent batch: the script ignored it
        seen.add((args[0], args[1]))
        n_tasks, pos = int(args[2]), 4
        for _ in range(n_tasks):
            task_id, count = int(args[pos]), int(args[pos + 3])  # id, slot, label index, count, scores
            state = states.get(task_id, TaskState(label_hash=0))
            for raw in args[pos + 4 : pos + 4 + count]:
                state = apply_outcome(state, float(raw.lstrip("f")), cfg)
            states[task_id] = state
            pos += 4 + count
    return states


def assert_counts_match_reports(
    store: RedisStore, per_task: list[dict[int, int]], labels: list[dict[int, str]], pool: int = 16
) -> dict[int, int]:
    """Per task and per label, the stored completions equal what the processes reported."""
    reported: dict[int, int] = {}
    label_of: dict[int, str] = {}
    for counts, names in zip(per_task, labels, strict=True):
        for task_id, count in counts.items():
            reported[task_id] = reported.get(task_id, 0) + count
        label_of.update(names)
    snap = store.snapshot()
    assert snap.size == pool
    stored = dict(zip(snap.task_ids.tolist(), snap.column("completions").astype(int).tolist(), strict=True))
    assert stored == reported
    per_label: dict[str, int] = {}
    for task_id, count in reported.items():
        per_label[label_of[task_id]] = per_label.get(label_of[task_id], 0) + count
    stats = store.label_stats()
    assert {stats[label_hash(label)].label: stats[label_hash(label)].completions for label in per_label} == per_label
    return reported


def test_four_processes_give_exact_counts_and_emas_equal_a_replay_in_redis_order(
    redis_url: str, redis_client: redis.Redis, redis_server: Any
) -> None:
    algorithm = {"num_active_tasks": 16, "max_evictions_per_refresh": 0}
    namespace = "exact"
    shas = {name: redis_client.script_load(src) for name, src in script_sources().items()}
    shas["record_outcomes"] = redis_client.script_load(record_source("learning_progress"))
    monitor = MonitorLog("127.0.0.1", redis_server.port)
    try:
        with SPAWN.Pool(4) as pool:
            results = pool.starmap(
                report_outcomes, [(config_json(redis_url, namespace, **algorithm), 5000, seed) for seed in range(4)]
            )
    finally:
        monitor.stop()
    store = RedisStore.from_url(redis_url, namespace)
    counters = store.counters()
    assert counters["num_completed"] == 20_000
    assert counters["num_scheduled"] == 20_000
    assert counters["num_outcomes_for_evicted_tasks"] == 0
    assert len({r["client_id"] for r in results}) == 4 and len({r["pid"] for r in results}) == 4

    reported = assert_counts_match_reports(store, [r["per_task"] for r in results], [r["labels"] for r in results])

    shared = [t for t in reported if sum(t in r["per_task"] for r in results) == 4]
    assert shared, "no task was fed by all four processes"
    replayed = replay(monitor.commands("EVALSHA"), shas["record_outcomes"], LearningProgressConfig(**algorithm))
    for task_id in shared:
        record = store.read_task(task_id)
        assert record is not None
        state = replayed[task_id]
        assert record.completions == state.completions
        for field in ("reward_ema", "reward_sq_ema", "success_ema", "p_fast", "p_slow", "p_true", "baseline", "lp"):
            assert getattr(record, field) == getattr(state, field), (task_id, field)


def test_tasks_and_labels_of_one_process_are_visible_to_another_with_another_hash_seed(redis_url: str) -> None:
    """Reference bugs 2.2 (hash() differs per process), 2.3 (other processes' tasks invisible), 2.4/1.2."""
    namespace = "visible"
    payload = config_json(redis_url, namespace, num_active_tasks=12)
    with SPAWN.Pool(1) as pool:
        pool.apply(report_outcomes, (payload, 50, 1))
    previous = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = "4242"
    try:
        with SPAWN.Pool(1) as pool:
            seen = pool.apply(read_visible_state, (payload,))
    finally:
        if previous is None:
            del os.environ["PYTHONHASHSEED"]
        else:
            os.environ["PYTHONHASHSEED"] = previous
    assert seen["hashseed"] == "4242"
    assert len(seen["tasks"]) == 12
    for task_id, label in seen["tasks"].items():
        assert label == GENERATOR.get_task(task_id).label
    assert seen["hashes"] == {label: label_hash(label) for label in seen["labels"].values()}
    assert seen["labels"] == {label_hash(label): label for label in seen["labels"].values()}


def test_processes_evicting_the_same_tasks_evict_each_exactly_once(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, "race")
    store.attach(LearningProgressConfig(num_active_tasks=60))
    store.create_tasks([Task(i, f"l{i % 3}", {}) for i in range(1, 61)])
    victims = list(range(1, 51))
    start_at = time.time() + 1.0
    with SPAWN.Pool(4) as pool:
        won = pool.starmap(
            evict_same_victims, [(redis_url, "race", victims, 1000 * (w + 1), start_at) for w in range(4)]
        )
    flat = [v for w in won for v in w]
    assert sorted(flat) == victims  # every victim evicted once, by exactly one process
    counters = store.counters()
    assert counters["num_evicted"] == 50 and counters["num_created"] == 110
    assert store.snapshot().size == 60


def assert_namespace_consistent(client: redis.Redis, namespace: str, capacity: int) -> dict[str, int]:
    """Pool, task hashes, packed scores, label aggregates and counters all agree."""
    prefix = "{cr:" + namespace + "}"
    blob = client.get(f"{prefix}:scores") or b""
    assert len(blob) == LP_DTYPE.itemsize * capacity
    records = np.frombuffer(blob, dtype=LP_DTYPE)
    pool = {int(row["task_id"]): slot for slot, row in enumerate(records) if row["task_id"] > 0}
    assert int(client.hget(f"{prefix}:meta", "pool_size") or 0) == len(pool)
    for task_id, slot in pool.items():
        fields = {k.decode(): v.decode() for k, v in client.hgetall(f"{prefix}:task:{task_id}").items()}
        assert len(fields) == 15, (task_id, fields)  # slot, 6 store fields, lp and 7 LP state fields
        assert int(fields["slot"]) == slot
        row = records[slot]
        assert int(row["task_id"]) == task_id
        for name in LP_DTYPE.names or ():
            if name != "task_id" and not name.startswith("unused_"):
                assert float(row[name]) == float(fields[name]), (task_id, name)
    task_keys = [k for k in client.scan_iter(match=f"{prefix}:task:*")]
    assert len(task_keys) == len(pool)
    counters = {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:counters").items()}
    labels = [client.hgetall(f"{prefix}:label:{h.decode()}") for h in client.hkeys(f"{prefix}:labels")]
    assert sum(int(row.get(b"active", 0)) for row in labels) == len(pool)
    assert sum(int(row.get(b"created", 0)) for row in labels) == counters["num_created"]
    assert sum(int(row.get(b"evicted", 0)) for row in labels) == counters.get("num_evicted", 0)
    assert sum(int(row.get(b"completions", 0)) for row in labels) == counters.get("num_completed", 0)
    assert counters["num_created"] - counters.get("num_evicted", 0) == len(pool)
    return counters


def test_concurrent_eviction_keeps_the_pool_at_capacity_and_counters_consistent(
    redis_url: str, redis_client: redis.Redis
) -> None:
    payload = config_json(
        redis_url, "churn", batch_size=8, num_active_tasks=24, min_presentations_for_eviction=1,
        eviction_threshold_percentile=1.0, max_evictions_per_refresh=8,
    )
    with SPAWN.Pool(4) as pool:
        reported = sum(pool.starmap(churn, [(payload, 3000, seed) for seed in range(4)]))
    counters = assert_namespace_consistent(redis_client, "churn", 24)
    assert redis_client.hget("{cr:churn}:meta", "pool_size") == b"24"
    assert counters["num_evicted"] > 50
    assert counters["num_completed"] == reported


def test_a_worker_killed_mid_run_leaves_no_half_written_task(redis_url: str, redis_client: redis.Redis) -> None:
    payload = config_json(
        redis_url, "killed", batch_size=1, num_active_tasks=16, min_presentations_for_eviction=2,
        eviction_threshold_percentile=0.5,
    )
    processes = [SPAWN.Process(target=run_until_killed, args=(payload,)) for _ in range(3)]
    for process in processes:
        process.start()
    deadline = time.time() + 60
    while int(redis_client.hget("{cr:killed}:counters", "num_completed") or 0) < 3000 and time.time() < deadline:
        time.sleep(0.05)
    for process in processes:
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    counters = assert_namespace_consistent(redis_client, "killed", 16)
    assert counters["num_completed"] >= 3000 and counters.get("num_evicted", 0) > 0


def _forked_child(curriculum: Curriculum, parent_client: int, queue: Any) -> None:
    for _ in range(100):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 0.5)
    curriculum.close()
    queue.put(curriculum.client_id != parent_client)


def test_a_forked_child_gets_its_own_connection_and_client_id(redis_url: str) -> None:
    config = CurriculumConfig.model_validate_json(config_json(redis_url, "forked", num_active_tasks=8))
    curriculum = Curriculum(config)
    for _ in range(40):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 0.5)
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    child = fork.Process(target=_forked_child, args=(curriculum, curriculum.client_id, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) is True
    for _ in range(10):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 0.5)
    curriculum.close()
    counters = RedisStore.from_url(redis_url, "forked").counters()
    assert counters["num_completed"] == 150
