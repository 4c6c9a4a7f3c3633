"""What the run's history costs the write path (lua/include_history.lua), for benchmarks/run.py.

Every batch updates the per-label totals mirror (one HSET); a batch that crosses an interval also appends
one stream entry (HGETALL of counters and mirror + XADD). Measured on the server (INFO commandstats,
``usec_per_call`` of EVALSHA) and on the client (median per record call), with the history off, at the
default interval, and at an interval of one batch (an XADD on every call: the worst case).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import redis

from curriculum_redis import BucketedTaskGenerator, LearningProgressConfig
from curriculum_redis.history import set_interval
from curriculum_redis.store.base import Outcome, OutcomeBatch
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.schema import HISTORY_EVERY

GENERATOR = BucketedTaskGenerator({}, {"level": list(range(8)), "size": [5, 7, 9, 11]}, label="bench")
BATCH = 64


def bench_history(url: str, calls: int, rounds: int) -> dict[str, Any]:
    """Median client time and server time per 64-outcome record call, per history setting (32 labels)."""
    client = redis.Redis.from_url(url)
    store = RedisStore.from_url(url, "bench-history")
    store.attach(LearningProgressConfig(num_active_tasks=256))
    tasks = [GENERATOR.get_task(i) for i in range(1, 257)]
    store.create_tasks(tasks)
    rng = np.random.default_rng(2)
    seq = [0]

    def record() -> float:
        seq[0] += 1
        picks = rng.integers(256, size=BATCH)
        outcomes = [Outcome(tasks[i].task_id, tasks[i].label_hash, float(rng.random())) for i in picks]
        t0 = time.perf_counter()
        store.record(OutcomeBatch(7, seq[0], outcomes))
        return time.perf_counter() - t0

    settings = {"off": 0, "default": HISTORY_EVERY, "every_batch": BATCH}
    client_s: dict[str, list[float]] = {name: [] for name in settings}
    server_us: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(rounds):
        for name, every in settings.items():
            set_interval(client, "bench-history", every)
            record()  # warm: the script is loaded
            client.config_resetstat()
            client_s[name].append(statistics.median(record() for _ in range(calls)))
            stats = client.info("commandstats").get("cmdstat_evalsha", {})
            server_us[name].append(float(stats.get("usec_per_call", 0)))
    entries = client.xlen("{cr:bench-history}:history")
    client.close()
    store.close()
    med = {f"record_64_{n}_s": statistics.median(v) for n, v in client_s.items()}
    med.update({f"server_us_{n}": statistics.median(v) for n, v in server_us.items()})
    med["xadd_server_us"] = med["server_us_every_batch"] - med["server_us_default"]
    med["mirror_server_us"] = med["server_us_default"] - med["server_us_off"]
    med["entries_written"] = entries
    return med
