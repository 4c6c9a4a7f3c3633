"""Curriculum quality on real environments: does a curriculum teach more than uniform sampling?

Benchmarks (each a task space and one learner that transfers across its tasks):

- ``frozenlake-corridor|wide|slippery|sealed``: gymnasium ``FrozenLake-v1``, a task is a start cell, one
  shared tabular Q-learner (a reverse curriculum); ``sealed`` has half of its starts cut off from the goal.
- ``minigrid-rooms``: minigrid ``EmptyEnv`` rooms of size 5..16, a third with a budget too short to succeed.
- ``student-chain`` / ``student-families``: the simulated student (``benchmarks/quality.py``'s task space,
  and three families of different learning rates beside impossible and mastered ones);
  ``student-chain-endless``: the chain through an endless generator (the demo's), whose pool evicts and admits.

Rows: uniform sampling without the library, the library's default, every algorithm with its defaults
(driven by ``CurriculumEnv``, in process), and a privileged oracle. Columns: final performance, area under
the learning curve, solved tasks, and the shares of episodes on impossible and on already-solved tasks;
mean ± std over seeds. Usage::

    python benchmarks/quality_envs.py               # 8 seeds, full budgets (about 11 min on 2 cores)
    python benchmarks/quality_envs.py --quick       # 2 seeds, 40% budgets (CI)
    python benchmarks/quality_envs.py --smoke       # seconds: checks the plumbing (used by the tests)
    python benchmarks/quality_envs.py --only frozenlake-sealed --seeds 4 --jobs 2

Writes ``<out>/quality_envs.json`` and ``<out>/quality_envs.png`` and prints a markdown table per benchmark.
Needs ``gymnasium``, ``minigrid`` and (for the plot) ``matplotlib``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.quality_suite.core import Benchmark, Row, aggregate, run_job, standard_rows  # noqa: E402
from benchmarks.quality_suite.report import markdown_table, plot, write_json  # noqa: E402

MODES = {"smoke": (1, 0.0), "quick": (2, 0.4), "full": (8, 1.0)}
"""mode -> (seeds, budget scale); smoke uses SMOKE_EPISODES whatever the benchmark."""
SMOKE_EPISODES = 60


def all_benchmarks() -> list[Benchmark]:
    from benchmarks.quality_suite.frozenlake import FrozenLakeBenchmark
    from benchmarks.quality_suite.gridworld import GridBenchmark
    from benchmarks.quality_suite.student import ChainBenchmark, FamiliesBenchmark

    return [
        FrozenLakeBenchmark("frozenlake-corridor", "corridor", 5000),
        FrozenLakeBenchmark("frozenlake-wide", "wide", 3000),
        FrozenLakeBenchmark("frozenlake-slippery", "slippery", 3000),
        FrozenLakeBenchmark("frozenlake-sealed", "sealed", 2000),
        GridBenchmark("minigrid-rooms", 1200),
        FamiliesBenchmark("student-families", 20_000),
        ChainBenchmark("student-chain", 30_000),
        ChainBenchmark("student-chain-endless", 30_000, endless=True),
    ]


def scaled(bench: Benchmark, mode: str) -> Benchmark:
    _, scale = MODES[mode]
    if mode == "smoke":
        return replace(bench, episodes=SMOKE_EPISODES, checkpoints=3)  # type: ignore[type-var]
    return replace(bench, episodes=max(1, int(bench.episodes * scale)))  # type: ignore[type-var]


def run_suite(benches: list[Benchmark], rows: list[Row], seeds: int, jobs: int) -> dict[str, Any]:
    """Every (benchmark, row, seed), in ``jobs`` processes; aggregated per benchmark and row."""
    work = [(bench, row, seed) for bench in benches for row in rows for seed in range(seeds)]
    started = time.time()
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            done = pool.map(run_job, work, chunksize=1)
    else:
        done = [run_job(job) for job in work]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for bench_name, row_name, _, metrics in done:
        runs.setdefault(bench_name, {}).setdefault(row_name, []).append(metrics)
    out: dict[str, Any] = {"seeds": seeds, "benchmarks": {}, "seconds": 0.0}
    for bench in benches:
        space = bench.space()
        out["benchmarks"][bench.name] = {
            "episodes": bench.episodes,
            "seeds": seeds,
            "tasks": space.size,
            "impossible_tasks": int(space.impossible.sum()),
            "rows": {row.name: aggregate(runs[bench.name][row.name]) for row in rows},
            "notes": {row.name: row.note for row in rows if row.note},
            "runs": runs[bench.name],
        }
    out["seconds"] = time.time() - started
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="2 seeds, 40%% budgets")
    mode.add_argument("--smoke", action="store_true", help="tiny: checks the plumbing only")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default by mode: 1/2/8)")
    parser.add_argument("--only", action="append", default=None,
                        help="run only benchmarks whose name contains this (repeatable)")  # fmt: skip
    parser.add_argument("--rows", action="append", default=None,
                        help="run only rows whose name contains this (repeatable)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="directory for JSON and PNG")
    parser.add_argument("--no-plot", action="store_true")
    return parser.parse_args(argv)


def select(benches: list[Benchmark], rows: list[Row], args: argparse.Namespace) -> tuple[list[Benchmark], list[Row]]:
    if args.only:
        benches = [b for b in benches if any(key in b.name for key in args.only)]
    if args.rows:
        rows = [r for r in rows if any(key in r.name for key in args.rows)]
    if not benches or not rows:
        raise SystemExit(f"nothing to run: --only {args.only} / --rows {args.rows} match no benchmark or row")
    return benches, rows


def main(argv: list[str] | None = None, rows: list[Row] | None = None) -> int:
    """Run the suite; ``rows`` replaces the standard rows (experiments pass their own samplers)."""
    args = parse(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    seeds = args.seeds or MODES[mode][0]
    benches, chosen = select([scaled(b, mode) for b in all_benchmarks()], rows or standard_rows(), args)
    results = run_suite(benches, chosen, seeds, max(1, args.jobs))
    results["mode"] = mode
    out = Path(args.out)
    path = write_json(out, results)
    for name, info in results["benchmarks"].items():
        print(markdown_table(name, info), end="\n\n")
    picture = None if args.no_plot else plot(out, results)
    print(f"{mode} run: {results['seconds']:.0f} s; wrote {path}" + (f" and {picture}" if picture else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
