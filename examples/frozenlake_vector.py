"""A reverse curriculum on FrozenLake 8x8: several processes, each stepping a Gymnasium vector env, share one
curriculum in one Redis.

A task is a start cell; its label is the cell's distance to the goal (``lake:dist=3``), so ``watch`` and
``plot`` show the sampling share move from starts near the goal to far ones as the learners get better.
Each process trains its own tabular Q-learner; only the curriculum is shared.

    pip install 'curriculum_redis[gym,plot]'
    python examples/frozenlake_vector.py --redis-url redis://localhost:6379/0 --workers 4 --plot lake.png
    curriculum-redis --redis-url redis://localhost:6379/0 --namespace frozenlake watch   # meanwhile

Without ``--redis-url`` (or ``$CURRICULUM_REDIS_URL``) it starts a private server (the embedded extra or a
``redis-server`` on PATH) for the run. Every option can come from the environment too (``WORKERS=4``...), which
is how ``examples/docker-compose.yml`` runs it on several machines.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import redis

from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, LearningProgressConfig
from curriculum_redis.config import BufferConfig
from curriculum_redis.env import CurriculumEnv
from curriculum_redis.history import set_interval
from curriculum_redis.tasks import Task

SIZE = 8
LAKE = gym.make("FrozenLake-v1", map_name="8x8").unwrapped.desc  # type: ignore[attr-defined]
GOAL = (SIZE - 1, SIZE - 1)


def starts() -> list[dict[str, int]]:
    """Every frozen cell but the goal, with its Manhattan distance to the goal."""
    return [
        {"cell": r * SIZE + c, "dist": abs(GOAL[0] - r) + abs(GOAL[1] - c)}
        for r in range(SIZE)
        for c in range(SIZE)
        if LAKE[r][c] in (b"F", b"S")
    ]


def make_config(url: str, namespace: str) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=BucketedTaskGenerator(
            {}, {"start": starts()}, label="lake", finite=True, label_format="dist={start[dist]:02d}"
        ),
        algorithm=LearningProgressConfig(num_active_tasks=24, min_presentations_for_eviction=8),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=32),
    )


def start_at(env: gym.Env[Any, Any], task: Task) -> None:
    """Start the next episode on the task's cell (FrozenLake draws its start from this distribution)."""
    distribution = np.zeros(SIZE * SIZE)
    distribution[task.env_cfg["start"]["cell"]] = 1.0
    env.unwrapped.initial_state_distrib = distribution  # type: ignore[attr-defined]


def make_env(curriculum: Curriculum) -> CurriculumEnv[Any, Any]:
    inner = gym.make("FrozenLake-v1", map_name="8x8", is_slippery=False)
    return CurriculumEnv(inner, curriculum, apply_task=start_at)


def worker(config_json: str, envs: int, episodes: int, seed: int) -> int:
    """One process: a vector env of ``envs`` lakes, a Q-learner, ``episodes`` episodes. Returns successes."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    vector = gym.vector.SyncVectorEnv([lambda: make_env(curriculum) for _ in range(envs)])
    rng = np.random.default_rng(seed)
    q = np.zeros((SIZE * SIZE, 4))
    obs, _ = vector.reset(seed=seed)
    done_episodes = successes = 0
    ended = np.zeros(envs, dtype=bool)  # the vector env resets an ended sub-env at the next step
    while done_episodes < episodes:
        greedy = q[obs].argmax(axis=1)
        actions = np.where(rng.random(envs) < 0.2, rng.integers(0, 4, envs), greedy)
        next_obs, reward, terminated, truncated, _ = vector.step(actions)
        for i in np.flatnonzero(~ended):  # learn from real transitions only, not from the reset step
            target = reward[i] + (0.0 if terminated[i] else 0.95 * q[next_obs[i]].max())
            q[obs[i], actions[i]] += 0.5 * (target - q[obs[i], actions[i]])
        ended = terminated | truncated
        done_episodes += int(ended.sum())
        successes += int((reward * ended).sum())
        obs = next_obs
    vector.close()
    curriculum.close()
    return successes


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-url", default=env.get("CURRICULUM_REDIS_URL"), help="the shared Redis")
    parser.add_argument("--namespace", default=env.get("CURRICULUM_NAMESPACE", "frozenlake"))
    parser.add_argument("--workers", type=int, default=int(env.get("WORKERS", "4")), help="processes here")
    parser.add_argument("--envs", type=int, default=int(env.get("ENVS", "8")), help="sub-envs per process")
    parser.add_argument("--episodes", type=int, default=int(env.get("EPISODES", "5000")), help="per process")
    parser.add_argument("--history-every", type=int, default=int(env.get("HISTORY_EVERY", "500")))
    parser.add_argument("--plot", type=Path, default=None, help="write the run's plot here at the end")
    parser.add_argument("--short", action="store_true", help="a few seconds' run (the tests use it)")
    args = parser.parse_args(argv)
    if args.short:
        args.workers, args.envs, args.episodes, args.history_every = 2, 4, 300, 50
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Attach, set the history interval, run the workers; returns the run's statistics."""
    config = make_config(args.redis_url, args.namespace)
    with Curriculum(config) as curriculum:
        curriculum.refresh()  # attaches: the namespace exists before its interval is set
        client = redis.Redis.from_url(args.redis_url)
        set_interval(client, args.namespace, args.history_every)
        client.close()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            jobs = [(config.model_dump_json(), args.envs, args.episodes, seed) for seed in range(args.workers)]
            successes = pool.starmap(worker, jobs)
        stats = curriculum.stats()
    print(f"{int(stats['num_completed']):,} episodes, {sum(successes):,} reached the goal")
    if args.plot is not None:
        from curriculum_redis.plots import plot_namespace

        client = redis.Redis.from_url(args.redis_url)
        print(f"wrote {plot_namespace(client, args.namespace, args.plot)}")
        client.close()
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.redis_url:
        run(args)
        return 0
    from curriculum_redis.demo.server import EmbeddedRedis

    server = EmbeddedRedis()
    args.redis_url = server.start().url
    try:
        run(args)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
