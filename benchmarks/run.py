"""Side-by-side benchmarks: curriculum_redis vs the shared-memory + Manager-lock design, and vs Redis's floor.

Every comparison runs in this one process tree, alternating the contenders round by round, and reports
medians over the rounds (the machine is shared and noisy: ratios measured side by side mean more than
absolute figures). Usage::

    python benchmarks/run.py            # full run, a few minutes
    python benchmarks/run.py --quick    # under 3 minutes
    python benchmarks/run.py --smoke    # seconds; checks the plumbing (used by the tests)

Writes ``<out>/results.json`` (every figure) and ``<out>/results.png``; prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import baseline_shm  # noqa: E402
from benchmarks.history_cost import bench_history  # noqa: E402
from curriculum_redis import (  # noqa: E402
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
)
from curriculum_redis.demo.server import EmbeddedRedis  # noqa: E402
from curriculum_redis.store.base import Outcome, OutcomeBatch  # noqa: E402
from curriculum_redis.store.redis import RedisStore  # noqa: E402

SPAWN = mp.get_context("spawn")
BATCHES = (1, 64, 256)
"""Outcome batch sizes measured: 1 is write-through, 64 the default, 256 a large batch."""
GENERATOR = BucketedTaskGenerator({}, {"level": list(range(8)), "size": [5, 7, 9, 11]}, label="bench")


@dataclass(frozen=True)
class Sizes:
    rounds: int
    updates_per_process: int
    processes: tuple[int, ...]
    latency_tasks: tuple[int, ...]
    draws: int
    baseline_draws: int
    floor_calls: int
    refresh_tasks: tuple[int, ...]
    refresh_reps: int


SIZES = {
    "smoke": Sizes(1, 300, (1, 2), (256,), 2000, 50, 100, (256,), 3),
    "quick": Sizes(3, 3000, (1, 2, 4), (256, 1024, 10_000), 50_000, 300, 2000, (1024, 10_000), 15),
    "full": Sizes(5, 10_000, (1, 2, 4), (256, 1024, 10_000), 200_000, 1000, 5000, (1024, 10_000), 40),
}


def config_for(url: str, namespace: str, tasks: int, batch_size: int = 64) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(num_active_tasks=tasks, max_evictions_per_refresh=0),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=batch_size),
    )


# -- outcome throughput -------------------------------------------------------------------------


def _throughput_worker(config_json: str, n: int, barrier: Any, results: Any) -> None:
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    ids = list(curriculum.probabilities())
    rng = np.random.default_rng(os.getpid())
    scores = rng.random(n).tolist()
    picks = rng.integers(len(ids), size=n).tolist()
    barrier.wait()
    start = time.time()
    for i in range(n):
        curriculum.update_task_performance(ids[picks[i]], scores[i])
    curriculum.flush()
    results.put((start, time.time()))
    curriculum.close()


def measure_ours_throughput(url: str, processes: int, n: int, batch_size: int, namespace: str) -> dict[str, Any]:
    config_json = config_for(url, namespace, 256, batch_size).model_dump_json()
    Curriculum(CurriculumConfig.model_validate_json(config_json)).close()  # create the pool once
    barrier = SPAWN.Barrier(processes)
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=_throughput_worker, args=(config_json, n, barrier, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    completed = RedisStore.from_url(url, namespace).counters()["num_completed"]
    if completed != processes * n:
        raise RuntimeError(f"{completed} outcomes recorded, {processes * n} reported")
    return {
        "processes": processes,
        "updates": processes * n,
        "seconds": seconds,
        "updates_per_s": processes * n / seconds,
    }


def bench_throughput(url: str, sizes: Sizes) -> list[dict[str, Any]]:
    rows = []
    for processes in sizes.processes:
        samples: dict[str, list[float]] = {name: [] for name in ("baseline", *(f"redis_batch_{b}" for b in BATCHES))}
        for round_ in range(sizes.rounds):
            n = sizes.updates_per_process
            samples["baseline"].append(baseline_shm.measure_update_throughput(processes, n)["updates_per_s"])
            for batch in BATCHES:
                ns = f"bench-tp-{processes}-{batch}-{round_}"
                result = measure_ours_throughput(url, processes, n, batch, ns)
                samples[f"redis_batch_{batch}"].append(result["updates_per_s"])
        med = {name: statistics.median(values) for name, values in samples.items()}
        rows.append(
            {
                "processes": processes,
                **{f"{name}_updates_per_s": value for name, value in med.items()},
                **{f"ratio_batch_{b}": med[f"redis_batch_{b}"] / med["baseline"] for b in BATCHES},
                "samples": samples,
            }
        )
    return rows


# -- get_task latency ---------------------------------------------------------------------------


def prime_all_eligible(curriculum: Curriculum, outcomes_per_task: int = 12) -> None:
    """Give every task enough outcomes to be eligible, written straight through the store."""
    store = curriculum.store
    rng = np.random.default_rng(0)
    tasks = [curriculum.config.generator.get_task(t) for t in curriculum.probabilities()]
    seq = 10**9
    for start in range(0, len(tasks), 500):
        chunk = tasks[start : start + 500]
        outcomes = [
            Outcome(t.task_id, t.label_hash, float(rng.random())) for t in chunk for _ in range(outcomes_per_task)
        ]
        seq += 1
        store.record(OutcomeBatch(1, seq, outcomes))
    curriculum.refresh()


def time_get_task(curriculum: Curriculum, draws: int) -> dict[str, float]:
    timer = time.perf_counter_ns
    get_task = curriculum.get_task
    samples = np.empty(draws, dtype=np.int64)
    for i in range(draws):
        t0 = timer()
        get_task()
        samples[i] = timer() - t0
    seconds = samples / 1e9
    return {
        "median_s": float(np.median(seconds)),
        "p90_s": float(np.quantile(seconds, 0.9)),
        "p99_s": float(np.quantile(seconds, 0.99)),
        "mean_s": float(seconds.mean()),
    }


def bench_get_task(url: str, sizes: Sizes) -> list[dict[str, Any]]:
    rows = []
    for tasks in sizes.latency_tasks:
        ours: list[dict[str, float]] = []
        base: list[float] = []
        with Curriculum(config_for(url, f"bench-lat-{tasks}", tasks)) as curriculum:
            prime_all_eligible(curriculum)
            for _ in range(sizes.rounds):
                draws = sizes.baseline_draws if tasks <= 1024 else max(sizes.baseline_draws // 5, 20)
                base.append(baseline_shm.measure_choose_latency(tasks, draws)["median_s"])
                ours.append(time_get_task(curriculum, sizes.draws))
        median = statistics.median(r["median_s"] for r in ours)
        rows.append(
            {
                "tasks": tasks,
                "get_task_median_s": median,
                "get_task_mean_s": statistics.median(r["mean_s"] for r in ours),
                "get_task_p99_s": statistics.median(r["p99_s"] for r in ours),
                "baseline_choose_median_s": statistics.median(base),
                "speedup": statistics.median(base) / median,
            }
        )
    return rows


# -- Redis floor --------------------------------------------------------------------------------


def bench_floor(url: str, sizes: Sizes) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    noop = client.register_script("return 1")
    noop()
    store = RedisStore.from_url(url, "bench-floor")
    store.attach(LearningProgressConfig(num_active_tasks=256))
    tasks = [GENERATOR.get_task(i) for i in range(1, 257)]
    store.create_tasks(tasks)
    rng = np.random.default_rng(1)
    timer = time.perf_counter

    def timed(fn: Any, calls: int) -> float:
        samples = []
        for _ in range(calls):
            t0 = timer()
            fn()
            samples.append(timer() - t0)
        return statistics.median(samples)

    def pipelined_noops() -> None:
        pipe = client.pipeline(transaction=False)
        for _ in range(64):
            pipe.evalsha(noop.sha, 0)
        pipe.execute()

    seq = [0]

    def record(batch: int) -> None:
        seq[0] += 1
        picks = rng.integers(256, size=batch)
        outcomes = [Outcome(tasks[i].task_id, tasks[i].label_hash, float(rng.random())) for i in picks]
        store.record(OutcomeBatch(7, seq[0], outcomes))

    calls = sizes.floor_calls
    out: dict[str, list[float]] = {"noop_evalsha_s": [], "noop_pipeline_64_s": [], "record_1_s": [], "record_64_s": []}
    for _ in range(sizes.rounds):
        out["noop_evalsha_s"].append(timed(noop, calls))
        out["record_1_s"].append(timed(lambda: record(1), calls))
        out["noop_pipeline_64_s"].append(timed(pipelined_noops, max(calls // 10, 10)))
        out["record_64_s"].append(timed(lambda: record(64), max(calls // 10, 10)))
    med = {name: statistics.median(values) for name, values in out.items()}
    slowlog_free = client.info("commandstats").get("cmdstat_evalsha", {})
    client.close()
    return {
        **med,
        "record_1_over_noop": med["record_1_s"] / med["noop_evalsha_s"],
        "record_64_over_noop": med["record_64_s"] / med["noop_evalsha_s"],
        "record_64_over_pipelined_noops": med["record_64_s"] / med["noop_pipeline_64_s"],
        "server_usec_per_evalsha": float(slowlog_free.get("usec_per_call", 0.0)),
    }


# -- snapshot refresh and memory ----------------------------------------------------------------


def bench_refresh_and_memory(url: str, sizes: Sizes) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    rows = []
    for tasks in sizes.refresh_tasks:
        namespace = f"bench-mem-{tasks}"
        with Curriculum(config_for(url, namespace, tasks)) as curriculum:
            prime_all_eligible(curriculum)
            snaps, refreshes = [], []
            for _ in range(sizes.refresh_reps):
                t0 = time.perf_counter()
                curriculum.store.snapshot()
                snaps.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                curriculum.refresh()
                refreshes.append(time.perf_counter() - t0)
        total = 0
        keys = list(client.scan_iter(match="{cr:" + namespace + "}:*", count=1000))
        for key in keys:
            total += int(client.memory_usage(key, samples=0) or 0)
        task_keys = [k for k in keys if b":task:" in k]
        per_task_hash = statistics.median(int(client.memory_usage(k) or 0) for k in task_keys[:200])
        rows.append(
            {
                "tasks": tasks,
                "read_snapshot_median_s": statistics.median(snaps),
                "refresh_median_s": statistics.median(refreshes),
                "memory_bytes_per_task": total / tasks,
                "task_hash_bytes": per_task_hash,
                "namespace_keys": len(keys),
            }
        )
    client.close()
    return rows


# -- report -------------------------------------------------------------------------------------


def machine(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    info = client.info("server")
    client.close()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_version": info.get("redis_version"),
        "numpy": np.__version__,
    }


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = results["machine"]
    console.print(f"[bold]machine[/]: {m['cores']} cores, Python {m['python']}, Redis {m['redis_version']}")
    table = Table(title="outcome throughput (updates/s, medians)")
    table.add_column("processes", justify="right")
    table.add_column("shm+Manager lock", justify="right")
    for batch in BATCHES:
        table.add_column(f"redis batch {batch}", justify="right")
        table.add_column("ratio", justify="right")
    for row in results["throughput"]:
        cells = [str(row["processes"]), f"{row['baseline_updates_per_s']:,.0f}"]
        for batch in BATCHES:
            cells += [f"{row[f'redis_batch_{batch}_updates_per_s']:,.0f}", f"{row[f'ratio_batch_{batch}']:.1f}x"]
        table.add_row(*cells)
    console.print(table)
    table = Table(title="choosing a task (medians)")
    for col in ("tasks", "get_task median", "get_task mean", "p99", "shm choose median", "speedup"):
        table.add_column(col, justify="right")
    for row in results["get_task"]:
        table.add_row(
            str(row["tasks"]),
            f"{row['get_task_median_s'] * 1e6:.2f} µs",
            f"{row['get_task_mean_s'] * 1e6:.2f} µs",
            f"{row['get_task_p99_s'] * 1e6:.1f} µs",
            f"{row['baseline_choose_median_s'] * 1e6:.0f} µs",
            f"{row['speedup']:.0f}x",
        )
    console.print(table)
    f = results["floor"]
    table = Table(title="Redis floor (medians per call)")
    for col in ("no-op EVALSHA", "record 1 outcome", "ratio", "64 pipelined no-ops", "record 64 outcomes", "ratio"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{f['noop_evalsha_s'] * 1e6:.0f} µs",
        f"{f['record_1_s'] * 1e6:.0f} µs",
        f"{f['record_1_over_noop']:.2f}x",
        f"{f['noop_pipeline_64_s'] * 1e6:.0f} µs",
        f"{f['record_64_s'] * 1e6:.0f} µs",
        f"{f['record_64_over_pipelined_noops']:.2f}x",
    )
    console.print(table)
    table = Table(title="snapshot refresh and Redis memory")
    for col in ("tasks", "read snapshot", "full refresh", "bytes/task", "task hash bytes"):
        table.add_column(col, justify="right")
    for row in results["refresh"]:
        table.add_row(
            str(row["tasks"]),
            f"{row['read_snapshot_median_s'] * 1e3:.2f} ms",
            f"{row['refresh_median_s'] * 1e3:.2f} ms",
            f"{row['memory_bytes_per_task']:.0f}",
            f"{row['task_hash_bytes']:.0f}",
        )
    console.print(table)
    h = results["history"]
    console.print(
        f"history (server µs per 64-outcome record call): off {h['server_us_off']:.1f}, default interval "
        f"{h['server_us_default']:.1f}, an XADD every call {h['server_us_every_batch']:.1f}: "
        f"XADD {h['xadd_server_us']:.1f} µs per entry, label mirror {h['mirror_server_us']:.1f} µs per call"
    )


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    procs = [r["processes"] for r in results["throughput"]]
    series = [("baseline_updates_per_s", "shm + Manager lock")]
    series += [(f"redis_batch_{b}_updates_per_s", f"redis, batch {b}") for b in BATCHES]
    width = 0.8 / len(series)
    x = np.arange(len(procs))
    for i, (key, name) in enumerate(series):
        ax1.bar(x + (i - (len(series) - 1) / 2) * width, [r[key] for r in results["throughput"]], width, label=name)
    ax1.set_xticks(x, [str(p) for p in procs])
    ax1.set_xlabel("processes")
    ax1.set_ylabel("outcomes / s")
    ax1.set_yscale("log")
    ax1.legend()
    ax1.set_title("outcome throughput")
    tasks = [str(r["tasks"]) for r in results["get_task"]]
    x = np.arange(len(tasks))
    ax2.bar(x - 0.2, [r["baseline_choose_median_s"] * 1e6 for r in results["get_task"]], 0.4, label="shm choose")
    ax2.bar(x + 0.2, [r["get_task_median_s"] * 1e6 for r in results["get_task"]], 0.4, label="get_task()")
    ax2.set_xticks(x, tasks)
    ax2.set_xlabel("tasks in pool")
    ax2.set_ylabel("µs per call (median)")
    ax2.set_yscale("log")
    ax2.legend()
    ax2.set_title("choosing a task")
    fig.suptitle(f"{results['machine']['cores']} cores, Redis {results['machine']['redis_version']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes, under 3 minutes")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes: checks the plumbing only")
    parser.add_argument("--redis-url", help="benchmark against this server instead of a private one")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="directory for JSON and PNG")
    args = parser.parse_args(argv)
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = SIZES[mode_name]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = None if args.redis_url else EmbeddedRedis(persistence="none").start()
    url = args.redis_url or (server.url if server else "")
    started = time.time()
    try:
        results: dict[str, Any] = {"mode": mode_name, "machine": machine(url)}
        results["throughput"] = bench_throughput(url, sizes)
        results["get_task"] = bench_get_task(url, sizes)
        results["floor"] = bench_floor(url, sizes)
        results["refresh"] = bench_refresh_and_memory(url, sizes)
        results["history"] = bench_history(url, sizes.floor_calls, sizes.rounds)
        results["seconds"] = time.time() - started
    finally:
        if server is not None:
            server.stop()
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, out / "results.png")
    print_table(results)
    print(f"\n{mode_name} run took {results['seconds']:.0f} s; wrote {out / 'results.json'} and {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
