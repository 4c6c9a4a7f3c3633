"""Curriculum quality on the simulated student: does each curriculum algorithm teach more than uniform?

For a fixed episode budget and several seeds, each sampler trains a fresh :class:`SimulatedStudent`
on the same task space (graded learnable levels, already-mastered tasks, impossible tasks) and we
compare the learnable levels mastered, the mean final success over learnable levels, and the share of
episodes spent on impossible and on mastered tasks. Usage::

    python benchmarks/quality.py            # 8 seeds x 30k episodes
    python benchmarks/quality.py --quick    # 3 seeds x 30k episodes, under 2 minutes
    python benchmarks/quality.py --smoke    # seconds; checks the plumbing (used by the tests)

Writes ``<out>/quality.json`` and prints a table of means and standard deviations across seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from curriculum_redis import Curriculum, CurriculumConfig  # noqa: E402
from curriculum_redis.demo.server import EmbeddedRedis  # noqa: E402
from curriculum_redis.demo.student import KINDS, SimulatedStudent, student_task_generator, train_uniform  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    seeds: int
    episodes: int


SIZES = {"smoke": Sizes(2, 3000), "quick": Sizes(3, 30_000), "full": Sizes(8, 30_000)}
N_LEVELS = 6
POOL = 32

LP = "learning_progress"
SAMPLERS: dict[str, dict[str, Any] | None] = {
    "uniform": None,
    "frontier (the default)": {"algorithm": "frontier"},
    "lp reference (bidirectional)": {"algorithm": LP, "use_bidirectional": True},
    "lp reference (variance)": {"algorithm": LP, "use_bidirectional": False},
    "lp noise-corrected (z=1)": {"algorithm": LP, "use_bidirectional": True, "lp_noise_correction": 1.0},
    "prioritized level replay": {"algorithm": "prioritized_replay"},
    "learnability (proportional)": {"algorithm": "learnability"},
    "learnability (top-k)": {"algorithm": "learnability", "sampling": "top_k", "top_k": 8},
    "uniform (algorithm)": {"algorithm": "uniform"},
    "sequential (stop conditions)": {"algorithm": "sequential"},
}
"""Every row but the first runs through :class:`Curriculum` with only ``config.algorithm`` changed."""

VALUE_EMA = 0.1
"""Prioritized level replay scores a task by its value loss: the trainer here keeps a per-task value
estimate (an EMA of the task's results) and reports ``|result - value|``, the L1 value loss of a one-step
episode (what PLR's positive-value-loss score reduces to)."""


def sequential_stages() -> dict[str, Any]:
    """One stage per learnable level, in order, each left once 48 of its last 50 episodes succeed: the
    textbook curriculum, which knows the task order that the other samplers must discover."""
    stages: list[dict[str, Any]] = [
        {
            "name": f"level-{level}",
            "env_cfg": {"kind": "learnable", "level": level},
            "window": 50,
            "stop_condition": "window>=50 & success>=0.96",
        }
        for level in range(1, N_LEVELS + 1)
    ]
    del stages[-1]["stop_condition"]
    return {"algorithm": "sequential", "stages": stages}


def run_curriculum(algorithm: dict[str, Any], seed: int, episodes: int, redis_url: str | None = None) -> dict[str, Any]:
    generator = student_task_generator(n_levels=N_LEVELS)
    if algorithm["algorithm"] == "sequential":
        data = {"algorithm": sequential_stages(), "seed": seed, "redis_url": redis_url, "namespace": f"quality-{seed}"}
    else:
        data = {"task_generator": generator, "algorithm": {"num_active_tasks": POOL, **algorithm}, "seed": seed}
    config = CurriculumConfig.model_validate(data)
    student = SimulatedStudent(seed=seed, n_levels=N_LEVELS)
    spent = dict.fromkeys(KINDS, 0)
    value: dict[int, float] = {}
    value_loss = algorithm["algorithm"] == "prioritized_replay"
    with Curriculum(config) as curriculum:
        for _ in range(episodes):
            task = curriculum.get_task()
            spent[task.env_cfg["kind"]] += 1
            result = student.episode(task.env_cfg)
            if value_loss:
                v = value.get(task.task_id, 0.0)
                value[task.task_id] = v + VALUE_EMA * (result - v)
                result = abs(result - v)
            curriculum.update_task_performance(task.task_id, result)
    return summarise(student, spent, episodes)


def run_uniform(seed: int, episodes: int) -> dict[str, Any]:
    student = SimulatedStudent(seed=seed, n_levels=N_LEVELS)
    spent, _ = train_uniform(student, student_task_generator(n_levels=N_LEVELS), episodes, np.random.default_rng(seed))
    return summarise(student, dict(spent), episodes)


def summarise(student: SimulatedStudent, spent: dict[str, int], episodes: int) -> dict[str, Any]:
    probabilities = student.level_probabilities()
    return {
        "mastered_levels": student.mastered_levels(),
        "mean_final_success": float(np.mean(probabilities)),
        "impossible_share": spent["impossible"] / episodes,
        "mastered_share": spent["mastered"] / episodes,
        "learnable_share": spent["learnable"] / episodes,
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for metric in runs[0]:
        values = [float(run[metric]) for run in runs]
        out[metric] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
    return out


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"simulated student: {results['seeds']} seeds x {results['episodes']:,} episodes "
        "(mean ± std across seeds)"
    )
    columns = ("mastered_levels", "mean_final_success", "impossible_share", "mastered_share")
    table.add_column("sampler", no_wrap=True)
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for name, row in results["samplers"].items():
        cells = []
        for column in columns:
            mean, std = row[column]["mean"], row[column]["std"]
            cells.append(f"{mean:.2f} ± {std:.2f}" if column == "mastered_levels" else f"{mean:.3f} ± {std:.3f}")
        table.add_row(name, *cells)
    Console(width=max(120, Console().width)).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 seeds x 30k episodes")
    mode.add_argument("--smoke", action="store_true", help="tiny: checks the plumbing only")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="directory for quality.json")
    args = parser.parse_args(argv)
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = SIZES[mode_name]
    started = time.time()
    per_sampler: dict[str, list[dict[str, Any]]] = {name: [] for name in SAMPLERS}
    # The sequential curriculum's stages advance on a Redis server: a private one for this run.
    server = EmbeddedRedis(persistence="none").start()
    try:
        for seed in range(sizes.seeds):
            for name, algorithm in SAMPLERS.items():
                if algorithm is None:
                    per_sampler[name].append(run_uniform(seed, sizes.episodes))
                else:
                    per_sampler[name].append(run_curriculum(algorithm, seed, sizes.episodes, server.url))
    finally:
        server.stop()
    results = {
        "mode": mode_name,
        "seeds": sizes.seeds,
        "episodes": sizes.episodes,
        "levels": N_LEVELS,
        "pool": POOL,
        "samplers": {name: aggregate(runs) for name, runs in per_sampler.items()},
        "runs": per_sampler,
        "seconds": time.time() - started,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\n{mode_name} run took {results['seconds']:.0f} s; wrote {out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
