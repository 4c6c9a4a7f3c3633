"""A training loop driven by a config file (any algorithm: see examples/configs/), with its statistics sent
to TensorBoard, or printed, as the run goes.

    python examples/train_from_config.py examples/configs/learning_progress.yaml \\
        --redis-url redis://localhost:6379/0 --episodes 20000 --tensorboard runs/lp
    tensorboard --logdir runs                     # (pip install 'curriculum_redis[tensorboard]')

The "environment" here is a stand-in whose success chance grows with practice on each task, so the script
runs anywhere; replace ``play`` by your environment's episode. Start it in several processes or machines
with the same config and URL: they share one curriculum.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from curriculum_redis import Curriculum, CurriculumConfig
from curriculum_redis.loggers import Sink, StatsLogger, log_stats, tensorboard_sink
from curriculum_redis.tasks import Task


def play(task: Task, practice: dict[str, int], rng: np.random.Generator) -> float:
    """One episode's score in [0, 1]: a task gets easier with practice, some labels never do."""
    seen = practice[task.label] = practice.get(task.label, 0) + 1
    hardness = zlib.crc32(task.label.encode()) % 100 / 100
    chance = 0.0 if hardness > 0.9 else min(1.0, seen / (50 + 500 * hardness))
    return float(rng.random() < chance)


def printer(stats: dict[str, float], step: int) -> None:
    print(
        f"episode {step:,}: {stats.get('num_active_tasks', stats.get('pool_size', 0)):.0f} tasks, "
        f"{stats.get('num_evicted', 0):.0f} evicted"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("config", type=Path, help="a .json/.yaml config (examples/configs/)")
    parser.add_argument("--redis-url", default=None, help="overrides the file's redis_url ('' for none)")
    parser.add_argument("--namespace", default=None, help="overrides the file's namespace")
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--vector", type=int, default=8, help="tasks drawn at once with sample(k)")
    parser.add_argument("--tensorboard", default=None, metavar="LOGDIR", help="log stats() there")
    parser.add_argument("--log-every", type=int, default=2000, help="episodes between two logs")
    args = parser.parse_args(argv)
    overrides = {} if args.redis_url is None else {"redis_url": args.redis_url or None}
    if args.namespace:
        overrides["namespace"] = args.namespace
    config = CurriculumConfig.from_file(args.config, **overrides)
    rng = np.random.default_rng(config.seed)
    practice: dict[str, int] = {}
    with Curriculum(config) as curriculum:
        logger: StatsLogger | None = None
        if config.redis_url is not None:  # the logger reads the shared namespace on its own connection
            sink: Sink = tensorboard_sink(args.tensorboard) if args.tensorboard else printer
            logger = log_stats(curriculum, sink, every_episodes=args.log_every)
        done = 0
        while done < args.episodes:
            for task in curriculum.sample(min(args.vector, args.episodes - done)):  # one per sub-environment
                curriculum.update_task_performance(task.task_id, play(task, practice, rng))
                done += 1
        curriculum.flush()
        if logger is not None:
            logger.stop()
        table = curriculum.label_table()
    print(f"{done:,} episodes played here; {len(table)} labels in the namespace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
