"""What task coordinates cost a refresh: the frontier distribution with and without positions.

With ``coordinates`` every refresh computes each never-solved task's distance to the closest solved one,
exactly (one matrix product per chunk, O(never solved x solved)). A synthetic pool on a square grid, half of
it solved, in one process, no Redis: the median time of the whole distribution per refresh, and that time
spread over the draws between two refreshes (frontier refreshes every ``max(10, pool // 25)`` draws). Usage::

    python benchmarks/nearness_cost.py                       # 256, 1,024, 4,096 and 8,192 tasks
    python benchmarks/nearness_cost.py --sizes 1024 --repeat 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from curriculum_redis.algorithms.frontier import Frontier, FrontierConfig  # noqa: E402
from curriculum_redis.store.base import ScoreSnapshot  # noqa: E402


def snapshot(n: int, seed: int = 0) -> ScoreSnapshot:
    """``n`` tasks on a square grid; a random half solved (winning), the rest never won in 4 tries."""
    rng = np.random.default_rng(seed)
    records = np.zeros(n, dtype=Frontier().dtype())
    solved = rng.random(n) < 0.5
    records["task_id"] = np.arange(1, n + 1)
    records["label_hash"] = np.arange(1, n + 1)
    records["completions"] = np.where(solved, 20.0, 4.0)
    records["wins"] = np.where(solved, 15.0, 0.0)
    records["fast"] = np.where(solved, 0.8, 0.0)
    records["slow"] = np.where(solved, 0.7, 0.0)
    records["frontier"] = np.where(solved, rng.random(n) * 0.1, 0.0)
    records["last_episode"] = rng.integers(0, 10 * n, n)
    side = int(np.ceil(np.sqrt(n)))
    positions = np.stack([np.arange(n) // side, np.arange(n) % side], axis=1).astype(np.float64)
    return ScoreSnapshot(1, records, None, 10 * n, positions)


def measure(n: int, repeat: int) -> dict[str, float]:
    algorithm, cfg = Frontier(), FrontierConfig(num_active_tasks=n)
    placed = snapshot(n)
    plain = dataclasses.replace(placed, positions=None)
    out: dict[str, float] = {"tasks": n, "refresh_every_draws": cfg.refresh_every_draws()}
    for name, snap in (("without", plain), ("with", placed)):
        algorithm.distribution(snap, cfg)  # warm
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            algorithm.distribution(snap, cfg)
            times.append(time.perf_counter() - t0)
        out[f"{name}_ms"] = 1000 * statistics.median(times)
    out["extra_us_per_draw"] = 1000 * (out["with_ms"] - out["without_ms"]) / out["refresh_every_draws"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096, 8192])
    parser.add_argument("--repeat", type=int, default=9, help="timed refreshes per size (the median is shown)")
    parser.add_argument("--smoke", action="store_true", help="one small size, a few repeats: checks the plumbing")
    parser.add_argument("--out", default=None, help="also write the figures to <out>/nearness_cost.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeat = [256], 2
    rows: list[dict[str, Any]] = [measure(n, args.repeat) for n in args.sizes]
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "nearness_cost.json").write_text(json.dumps(rows, indent=1))
    print("| pool (half solved) | refresh without positions | with positions | refresh every | extra per draw |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['tasks']:,} | {row['without_ms']:.2f} ms | {row['with_ms']:.2f} ms | "
              f"{row['refresh_every_draws']:,} draws | {row['extra_us_per_draw']:.1f} µs |")  # fmt: skip


if __name__ == "__main__":
    main()
