"""Where the default curriculum's budget goes on a benchmark with impossible tasks.

The frontier distribution is a sum of parts (``curriculum_redis.algorithms.frontier.frontier_parts``): the
rank part (young tasks, with fewer than ``min_samples`` outcomes, ranked first), the retry part of
never-solved tasks, and the uniform part. For each, the probability it puts on impossible tasks, averaged
over every refresh of every seed, beside the share of episodes actually played on them and the final
performance. It says which part a change must touch to spend less on impossible tasks. Usage::

    python benchmarks/budget.py                                     # frozenlake-sealed, block labels, 8 seeds
    python benchmarks/budget.py --bench frozenlake-sealed --labels own --seeds 4
    python benchmarks/budget.py --bench minigrid-rooms --labels own
    python benchmarks/budget.py --labels own --coordinates        # start cells with their row and column

Needs ``gymnasium`` and ``minigrid`` (the quality suite's benchmarks).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.quality_envs import SMOKE_EPISODES, all_benchmarks  # noqa: E402
from benchmarks.quality_suite.core import Benchmark, CustomFactory, Row, TaskSpace, run_one  # noqa: E402
from curriculum_redis import Curriculum, CurriculumConfig  # noqa: E402
from curriculum_redis.algorithms import frontier  # noqa: E402
from curriculum_redis.store.base import ScoreSnapshot  # noqa: E402
from curriculum_redis.tasks import TaskGenerator  # noqa: E402

PARTS = ("young", "rank", "retry", "uniform")


@contextmanager
def measuring(space: TaskSpace, generator: TaskGenerator, totals: dict[str, float]) -> Iterator[None]:
    """While active, every refresh of a frontier curriculum adds its parts' mass on impossible tasks to
    ``totals`` (and counts itself under ``refreshes``)."""
    impossible: dict[int, bool] = {}

    def is_impossible(task_id: int) -> bool:
        if task_id not in impossible:
            impossible[task_id] = bool(space.impossible[space.key(generator.get_task(task_id).env_cfg)])
        return impossible[task_id]

    original = frontier.Frontier.distribution

    def distribution(self: frontier.Frontier, snapshot: ScoreSnapshot, cfg: frontier.FrontierConfig) -> Any:
        parts = self.parts(snapshot, cfg)
        if parts.young.size:
            mask = np.array([is_impossible(int(t)) for t in snapshot.task_ids])
            total = float((parts.rank + parts.retry + parts.uniform).sum())
            totals["young"] += float(parts.rank[mask & parts.young].sum()) / total
            totals["rank"] += float(parts.rank[mask & ~parts.young].sum()) / total
            totals["retry"] += float(parts.retry[mask].sum()) / total
            totals["uniform"] += float(parts.uniform[mask].sum()) / total
            totals["refreshes"] += 1
        return original(self, snapshot, cfg)

    frontier.Frontier.distribution = distribution  # type: ignore[method-assign]
    try:
        yield
    finally:
        frontier.Frontier.distribution = original  # type: ignore[method-assign]


def default_with(generator: TaskGenerator) -> CustomFactory:
    """The library's default curriculum over ``generator`` (the row the suite calls "library default")."""

    def make(space: TaskSpace, seed: int) -> Curriculum:
        return Curriculum(CurriculumConfig(task_generator=generator, seed=seed))

    return make


def measure(bench: Benchmark, grouped: bool, seeds: int, located: bool = False) -> dict[str, float]:
    space = bench.space()
    generator = space.grouped if grouped and space.grouped is not None else space.generator
    if located and space.located is not None:  # block labels keep their labels and take the coordinates
        where = space.located.coordinates
        generator = generator.model_copy(update={"coordinates": where}) if grouped and where else space.located
    totals = dict.fromkeys((*PARTS, "refreshes"), 0.0)
    finals, shares = [], []
    with measuring(space, generator, totals):
        for seed in range(seeds):
            metrics = run_one(bench, Row("library default", "custom", factory=default_with(generator)), seed)
            finals.append(metrics["final"])
            shares.append(metrics["impossible_share"])
    refreshes = max(totals.pop("refreshes"), 1.0)
    out = {part: totals[part] / refreshes for part in PARTS}
    out.update(played=float(np.mean(shares)), final=float(np.mean(finals)), refreshes=refreshes)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default="frozenlake-sealed", help="a quality suite benchmark's name")
    parser.add_argument("--labels", choices=("block", "own"), default="block",
                        help="block: labels shared by neighbouring tasks (where the benchmark has them); "
                        "own: the generator's")  # fmt: skip
    parser.add_argument("--coordinates", action="store_true",
                        help="tasks with coordinates (TaskGenerator.coordinates), where the benchmark has them")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="one seed of a few episodes: checks the plumbing")
    parser.add_argument("--out", default=None, help="also write the figures to <out>/budget.json")
    args = parser.parse_args(argv)
    benches = {b.name: b for b in all_benchmarks()}
    if args.bench not in benches:
        parser.error(f"unknown benchmark {args.bench!r}; one of {', '.join(benches)}")
    bench = benches[args.bench]
    if args.smoke:
        bench, args.seeds = replace(bench, episodes=SMOKE_EPISODES), 1  # type: ignore[type-var]
    result = measure(bench, args.labels == "block", args.seeds, args.coordinates)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "budget.json").write_text(json.dumps({"benchmark": args.bench, **result}, indent=1))
    located = ", coordinates" if args.coordinates else ""
    print(f"{args.bench}, {args.labels} labels{located}, {args.seeds} seeds, {int(result['refreshes'])} refreshes: "
          f"final performance {result['final']:.2f}")  # fmt: skip
    print("| part of the distribution | mass on impossible tasks (mean over refreshes) |")
    print("|---|---|")
    for part in PARTS:
        print(f"| {part} | {100 * result[part]:.1f}% |")
    print(f"| **all** | **{100 * sum(result[p] for p in PARTS):.1f}%** |")
    print(f"| episodes played on impossible tasks | {100 * result['played']:.1f}% |")


if __name__ == "__main__":
    main()
