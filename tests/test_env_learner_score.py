"""CurriculumEnv(score_when="learner"): the learner scores an episode after seeing its last transition.

A real gymnasium FrozenLake with a tabular Q-learner whose score is the episode's mean absolute TD error,
computed from the update on the final transition (what prioritized replay needs): impossible through the
default path, which reports inside the last ``step()``.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest

from curriculum_redis import BufferConfig, ConfigError, Curriculum, CurriculumConfig, LearningProgressConfig
from curriculum_redis.algorithms.prioritized_replay import PrioritizedReplayConfig
from curriculum_redis.env import CurriculumEnv
from curriculum_redis.tasks import BucketedTaskGenerator, Task

STARTS = [0, 1, 2, 4, 6, 8, 9, 10, 13, 14]
"""The non-hole, non-goal cells of the 4x4 map: one task per start cell."""


def apply_start(env: gymnasium.Env[Any, Any], task: Task) -> None:
    lake: Any = env.unwrapped
    distrib = np.zeros(lake.observation_space.n)
    distrib[int(task.env_cfg["start"])] = 1.0
    lake.initial_state_distrib = distrib


def make_env(curriculum: Any, **kwargs: Any) -> CurriculumEnv[Any, Any]:
    lake = gymnasium.make("FrozenLake-v1", is_slippery=False, max_episode_steps=30)
    return CurriculumEnv(lake, curriculum, apply_task=apply_start, **kwargs)


def config(**kwargs: Any) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=BucketedTaskGenerator(buckets={"start": STARTS}),
        # No eviction: every score lands on a task still in the pool, where the test reads it back.
        algorithm=PrioritizedReplayConfig(num_active_tasks=8, score_range=(0.0, 1.0), max_evictions_per_refresh=0),
        buffer=BufferConfig(batch_size=1),
        **kwargs,
    )


def q_episode(env: CurriculumEnv[Any, Any], q: np.ndarray, rng: np.random.Generator, **reset: Any) -> float:
    """One ε-greedy Q-learning episode (ε = 0.8: the goal is found early); the mean |TD error| of its updates."""
    obs, info = env.reset(**reset)
    assert info["task_id"] > 0
    errors = []
    while True:
        action = int(rng.integers(4)) if rng.random() < 0.8 else int(np.argmax(q[obs]))
        nxt, reward, terminated, truncated, _ = env.step(action)
        target = float(reward) + (0.0 if terminated else 0.99 * float(np.max(q[nxt])))
        errors.append(abs(target - q[obs, action]))
        q[obs, action] += 0.5 * (target - q[obs, action])
        obs = nxt
        if terminated or truncated:
            return float(np.mean(errors))


def scores_by_task(curriculum: Curriculum) -> dict[int, tuple[int, float]]:
    return {t.task_id: (t.completions, t.score_sum) for t in curriculum.store.export_state().tasks}


@pytest.mark.parametrize("via", ["report_score", "reset_option"])
def test_learner_scores_reach_the_store_after_the_episode(via: str) -> None:
    curriculum = Curriculum(config())
    env = make_env(curriculum, score_when="learner")
    q = np.zeros((16, 4))
    rng = np.random.default_rng(0)
    sent: dict[int, list[float]] = {}
    pending: float | None = None
    for _ in range(40):
        options = None if pending is None else {"curriculum_score": pending}
        loss = q_episode(env, q, rng, options=options)
        assert env.task is not None
        assert env.reported_episodes == sum(map(len, sent.values()))  # nothing reported inside step()
        sent.setdefault(env.task.task_id, []).append(min(loss, 1.0))
        if via == "report_score":
            env.report_score(min(loss, 1.0))
        else:
            pending = min(loss, 1.0)
    if via == "reset_option":
        env.reset(options={"curriculum_score": pending})
    curriculum.flush()
    stored = scores_by_task(curriculum)
    for task_id, losses in sent.items():
        completions, score_sum = stored[task_id]
        assert completions == len(losses)
        assert score_sum == pytest.approx(sum(losses))
    assert env.unscored_episodes == 0
    assert any(loss > 0 for losses in sent.values() for loss in losses)
    env.close()


def test_an_episode_left_unscored_is_counted_not_reported() -> None:
    curriculum = Curriculum(config())
    env = make_env(curriculum, score_when="learner")
    q = np.zeros((16, 4))
    rng = np.random.default_rng(1)
    q_episode(env, q, rng)
    q_episode(env, q, rng)  # the first episode's score never came
    env.report_score(0.5)
    with pytest.raises(RuntimeError, match="no ended episode awaits"):
        env.report_score(0.5)
    env.reset()
    assert (env.unscored_episodes, env.reported_episodes) == (1, 1)
    curriculum.flush()
    assert curriculum.stats()["num_completed"] == 1
    env.close()


def test_report_score_needs_learner_mode_and_learner_mode_takes_no_score_fn() -> None:
    curriculum = Curriculum(config())
    with pytest.warns(UserWarning, match="prioritized_replay"):
        env = make_env(curriculum)
    with pytest.raises(RuntimeError, match="score_when='learner'"):
        env.report_score(0.1)
    with pytest.raises(ConfigError, match="drop score_fn"):
        make_env(curriculum, score_when="learner", score_fn=lambda ret, info: ret)
    with pytest.raises(ConfigError, match="score_when must be"):
        make_env(curriculum, score_when="later")


def test_plr_warns_on_return_or_success_scores_only() -> None:
    plr = Curriculum(config())
    with pytest.warns(UserWarning, match="value loss"):
        make_env(plr)
    with pytest.warns(UserWarning, match="success"):
        make_env(plr, success_key="is_success")
    lp = Curriculum(
        CurriculumConfig(
            task_generator=BucketedTaskGenerator(buckets={"start": STARTS}), algorithm=LearningProgressConfig()
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_env(plr, score_when="learner")
        make_env(plr, score_fn=lambda ret, info: ret)
        make_env(lp)


@pytest.mark.redis
def test_learner_scores_on_redis(redis_url: str) -> None:
    curriculum = Curriculum(config(redis_url=redis_url, namespace="learner-score"))
    env = make_env(curriculum, score_when="learner")
    q = np.zeros((16, 4))
    rng = np.random.default_rng(2)
    total = 0.0
    for _ in range(20):
        loss = min(q_episode(env, q, rng), 1.0)
        env.report_score(loss)
        total += loss
    env.close()
    stored = scores_by_task(curriculum)
    assert sum(c for c, _ in stored.values()) == 20
    assert sum(s for _, s in stored.values()) == pytest.approx(total)
