"""Large pools on a shared server: how long does any single command hold Redis, and what does a task cost?

Redis runs nothing else while a command (a script call included) runs, so what matters to the other
clients of a shared server is the longest single command, not the total. For each pool size this fills a
fresh namespace through the library (attach, then ``create_tasks`` in chunks), records one batch of
outcomes spread over the whole pool, evicts a few tasks, reads a snapshot, and reads back from ``SLOWLOG``
the server-side time of each command that took at least ``--threshold-us`` (50 µs: every script call, and
the few slow commands a script runs, which SLOWLOG lists too), by kind. Usage::

    python benchmarks/large_pool.py                       # 100,000 and 1,000,000 tasks, ~2 min
    python benchmarks/large_pool.py --sizes 10000 --repeat 3
    python benchmarks/large_pool.py --smoke                # seconds: one pool of two segments (the tests)

Runs its own redis-server (persistence off) on a free port; prints a table (median and longest call per
command kind, memory per task) and writes ``<out>/large_pool.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from curriculum_redis import LearningProgressConfig  # noqa: E402
from curriculum_redis.demo.server import EmbeddedRedis  # noqa: E402
from curriculum_redis.store.base import Eviction, Outcome, OutcomeBatch  # noqa: E402
from curriculum_redis.store.redis import RedisStore  # noqa: E402
from curriculum_redis.store.schema import SEGMENT_RECORDS  # noqa: E402
from curriculum_redis.store.scripts import source_of  # noqa: E402
from curriculum_redis.tasks import Task  # noqa: E402

SCRIPTS = ("attach", "create_tasks", "evict_and_replace", "read_snapshot")


def script_names() -> dict[str, str]:
    """sha1 -> script name, for the EVALSHAs in SLOWLOG (record_outcomes is spliced per algorithm)."""
    names = {hashlib.sha1(source_of(n).encode()).hexdigest(): n for n in SCRIPTS}
    names[hashlib.sha1(source_of("record_outcomes:learning_progress").encode()).hexdigest()] = "record_outcomes"
    return names


def command_times(client: redis.Redis, names: dict[str, str]) -> dict[str, list[float]]:
    """Milliseconds per command kind since the last SLOWLOG RESET (EVALSHA named by its script)."""
    times: dict[str, list[float]] = {}
    for entry in client.slowlog_get(-1):
        command = entry["command"]
        words = (command.decode(errors="replace") if isinstance(command, bytes) else str(command)).split(" ")
        kind = words[0].upper()
        if kind in ("EVALSHA", "EVAL") and len(words) > 1:
            kind = names.get(words[1], "other script")
        times.setdefault(kind, []).append(entry["duration"] / 1000.0)
    return times


def measure(url: str, size: int, namespace: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    names = script_names()
    before = int(client.info("memory")["used_memory"])
    client.slowlog_reset()
    store = RedisStore.from_url(url, namespace)
    started = time.perf_counter()
    store.attach(LearningProgressConfig(num_active_tasks=size))
    store.create_tasks([Task(i + 1, f"level-{i % 50}", {}) for i in range(size)])
    filled_s = time.perf_counter() - started
    snap = store.snapshot()
    slots = snap.slot_of()
    picks = np.linspace(1, size, num=64, dtype=np.int64).tolist()
    outcomes = [Outcome(t, Task(t, f"level-{(t - 1) % 50}", {}).label_hash, 1.0, slot=slots[t]) for t in picks]
    store.record(OutcomeBatch(1, 1, outcomes))
    for k, victim in enumerate(picks[-4:]):
        store.evict_and_replace(Eviction(victim, Task(size + 1 + k, "new", {}), "low_score", 1, 1.0, 99))
    read_started = time.perf_counter()
    assert store.snapshot().size == size
    read_ms = (time.perf_counter() - read_started) * 1000.0
    times = command_times(client, names)
    client.slowlog_reset()  # its entries are memory too
    used = int(client.info("memory")["used_memory"]) - before
    keys = client.scan_iter(f"{{cr:{namespace}}}:scores*")
    longest_string = max(int(client.strlen(k)) for k in keys)
    store.close()
    client.close()
    return {
        "tasks": size,
        "fill_s": filled_s,
        "snapshot_read_ms": read_ms,
        "memory_bytes": used,
        "bytes_per_task": used / size,
        "longest_scores_string": longest_string,
        "commands": {
            kind: {"calls": len(ms), "median_ms": statistics.median(ms), "max_ms": max(ms)}
            for kind, ms in times.items()
        },
    }


def print_table(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(
            f"\n{r['tasks']:,} tasks: filled in {r['fill_s']:.1f} s, snapshot read {r['snapshot_read_ms']:.1f} ms, "
            f"{r['memory_bytes'] / 2**20:.0f} MiB ({r['bytes_per_task']:.0f} B a task), "
            f"longest :scores string {r['longest_scores_string'] / 2**20:.2f} MiB"
        )
        print("| command (calls of at least the SLOWLOG threshold) | calls | median | longest |")
        print("|---|---|---|---|")
        for kind, c in sorted(r["commands"].items(), key=lambda kv: -kv[1]["max_ms"]):
            print(f"| {kind} | {c['calls']:,} | {c['median_ms']:.3f} ms | {c['max_ms']:.3f} ms |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (each in a fresh namespace)")
    parser.add_argument("--smoke", action="store_true", help="one pool just over one segment")
    parser.add_argument("--threshold-us", type=int, default=50, help="SLOWLOG threshold")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeat = [SEGMENT_RECORDS + 100], 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(data_dir=tmp, persistence="none", extra_args=["--slowlog-max-len", "200000"]).start()
        try:
            redis.Redis.from_url(server.url).config_set("slowlog-log-slower-than", args.threshold_us)
            for size in args.sizes:
                for run in range(args.repeat):
                    results.append(measure(server.url, size, f"large-{size}-{run}"))
                    redis.Redis.from_url(server.url).flushall()
        finally:
            server.stop()
    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large_pool.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
