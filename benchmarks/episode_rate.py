"""What the default algorithm's frequent refreshes cost: episodes per second of ``get_task`` plus
``update_task_performance`` in one process, the default (frontier, a refresh every 10 draws at 256 tasks)
against learning progress (a refresh every 1,000 draws), with no environment at all. Usage::

    python benchmarks/episode_rate.py                   # 256 tasks, 3 runs of 5,000 episodes each
    python benchmarks/episode_rate.py --tasks 1024 --runs 5

Runs against a private server (the newest binary found, as the tests and the demo pick it) unless
``--redis-url`` names one; the algorithms alternate run by run, and medians are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from curriculum_redis import (  # noqa: E402
    BucketedTaskGenerator,
    Curriculum,
    CurriculumConfig,
    FrontierConfig,
    LearningProgressConfig,
)
from curriculum_redis.demo.server import EmbeddedRedis  # noqa: E402

ALGORITHMS = {"frontier (default)": FrontierConfig, "learning progress": LearningProgressConfig}


def episodes_per_s(url: str, namespace: str, algorithm: str, tasks: int, episodes: int, seed: int) -> float:
    config = CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": list(range(tasks))}, label="bench", finite=True),
        algorithm=ALGORITHMS[algorithm](num_active_tasks=tasks),
        redis_url=url,
        namespace=namespace,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    scores = rng.random(episodes)
    with Curriculum(config) as curriculum:
        curriculum.get_task()  # attach and fill the pool outside the clock
        started = time.perf_counter()
        for score in scores:
            curriculum.update_task_performance(curriculum.get_task().task_id, float(score))
        curriculum.flush()
        return episodes / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=256)
    parser.add_argument("--episodes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis-url", help="benchmark against this server instead of a private one")
    parser.add_argument("--smoke", action="store_true", help="one short run: checks the plumbing")
    parser.add_argument("--out", default=None, help="also write the figures to <out>/episode_rate.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.episodes, args.runs = 200, 1
    server = None if args.redis_url else EmbeddedRedis(persistence="none").start()
    url = args.redis_url or (server.url if server else "")
    rates: dict[str, list[float]] = {name: [] for name in ALGORITHMS}
    try:
        for run in range(args.runs):
            for i, name in enumerate(ALGORITHMS):
                rates[name].append(episodes_per_s(url, f"episode-rate-{run}-{i}", name, args.tasks, args.episodes, run))
    finally:
        if server is not None:
            server.stop()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{args.tasks} tasks, {args.runs} runs of {args.episodes} episodes, one process; median episodes/s:")
    for name, value in medians.items():
        print(f"  {name:20s} {value:10,.0f}   (runs: {', '.join(f'{v:,.0f}' for v in rates[name])})")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "episode_rate.json").write_text(json.dumps({"medians": medians, "runs": rates}, indent=1))


if __name__ == "__main__":
    main()
