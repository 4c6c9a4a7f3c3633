"""CurriculumEnv: one report per finished episode, with the right score, in single and vector envs."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    ConfigError,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    Task,
)
from curriculum_redis.env import CurriculumEnv
from curriculum_redis.store.redis import RedisStore

MAX_STEPS = 5
HIT, MISS = 1.0, -0.25
"""Rewards: exact binary fractions, so returns compare exactly."""


class ReachTarget(gymnasium.Env[Any, Any]):
    """Guess the target (0..3): reward 1 and termination on a hit, -0.25 per miss, truncation after 5 steps."""

    def __init__(self) -> None:
        self.observation_space = spaces.Discrete(MAX_STEPS + 1)
        self.action_space = spaces.Discrete(4)
        self.target = 0
        self.steps = 0

    def set_task(self, cfg: dict[str, Any]) -> None:
        self.target = int(cfg["target"])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.steps = 0
        return 0, {"target": self.target}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        hit = int(action) == self.target
        truncated = not hit and self.steps >= MAX_STEPS
        info: dict[str, Any] = {"is_success": hit} if hit or truncated else {}
        return self.steps, HIT if hit else MISS, hit, truncated, info


class NoSetTask(ReachTarget):
    set_task = None  # type: ignore[assignment]


class FakeCurriculum:
    """Hands out tasks with targets 0, 1, 2, ... and records what the wrapper reports."""

    def __init__(self, targets: list[int] | None = None) -> None:
        self.targets = targets or [0, 1, 2, 3]
        self.issued: list[Task] = []
        self.reports: list[tuple[int, float]] = []
        self.flushes = 0

    def get_task(self) -> Task:
        target = self.targets[len(self.issued) % len(self.targets)]
        task = Task(100 + len(self.issued), f"target={target}", {"target": target})
        self.issued.append(task)
        return task

    def update_task_performance(self, task_id: int, score: float) -> None:
        self.reports.append((task_id, score))

    def flush(self) -> None:
        self.flushes += 1


def play(env: gymnasium.Env[Any, Any], actions: list[int]) -> list[tuple[float, bool, bool, dict[str, Any]]]:
    out = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        out.append((float(reward), terminated, truncated, info))
    return out


# ------------------------------------------------------------------------------------------ single env


def test_reports_the_return_once_per_episode() -> None:
    fake = FakeCurriculum(targets=[2, 3])
    env = CurriculumEnv(ReachTarget(), fake)
    _, info = env.reset()
    assert (info["task_id"], info["task_label"]) == (100, "target=2")
    assert info["target"] == 2  # the inner env's info is kept
    steps = play(env, [0, 1, 2])
    assert [s[1] for s in steps] == [False, False, True]
    assert fake.reports == [(100, 2 * MISS + HIT)]
    # Steps past the end without a reset are passed through but never reported again.
    play(env, [2, 2])
    assert fake.reports == [(100, 2 * MISS + HIT)]

    _, info = env.reset()
    assert (info["task_id"], info["task_label"]) == (101, "target=3")
    steps = play(env, [0] * MAX_STEPS)
    assert steps[-1][2] is True  # truncated
    assert fake.reports == [(100, 2 * MISS + HIT), (101, MAX_STEPS * MISS)]
    assert env.reported_episodes == 2


def test_task_id_and_label_in_every_info() -> None:
    fake = FakeCurriculum(targets=[3])
    env = CurriculumEnv(ReachTarget(), fake)
    _, info = env.reset()
    for _, _, _, step_info in play(env, [0, 1, 2, 3]):
        assert step_info["task_id"] == info["task_id"] == 100
        assert step_info["task_label"] == "target=3"


def test_success_key_reports_success_not_return() -> None:
    fake = FakeCurriculum(targets=[1, 2])
    env = CurriculumEnv(ReachTarget(), fake, success_key="is_success")
    env.reset()
    play(env, [0, 1])
    env.reset()
    play(env, [0] * MAX_STEPS)
    assert fake.reports == [(100, 1.0), (101, 0.0)]


def test_success_key_missing_from_final_info_is_a_clear_error() -> None:
    env = CurriculumEnv(ReachTarget(), FakeCurriculum(targets=[0]), success_key="success")
    env.reset()
    with pytest.raises(KeyError, match="success_key='success'"):
        env.step(0)


def test_score_fn_gets_return_and_final_info() -> None:
    fake = FakeCurriculum(targets=[1])
    seen: list[tuple[float, dict[str, Any]]] = []

    def score_fn(total_return: float, info: dict[str, Any]) -> float:
        seen.append((total_return, info))
        return 10.0 * total_return

    env = CurriculumEnv(ReachTarget(), fake, score_fn=score_fn)
    env.reset()
    play(env, [0, 1])
    assert fake.reports == [(100, 10.0 * (MISS + HIT))]
    assert seen[0][0] == MISS + HIT and seen[0][1]["is_success"] is True


def test_score_fn_and_success_key_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="not both"):
        CurriculumEnv(ReachTarget(), FakeCurriculum(), score_fn=lambda r, i: r, success_key="is_success")


def test_reset_mid_episode_drops_the_unfinished_episode() -> None:
    fake = FakeCurriculum(targets=[3, 1])
    env = CurriculumEnv(ReachTarget(), fake)
    env.reset()
    play(env, [0, 0])  # unfinished
    env.reset()
    play(env, [1])
    assert fake.reports == [(101, HIT)]
    assert env.abandoned_episodes == 1 and env.reported_episodes == 1


def test_apply_task_callback_is_used_instead_of_set_task() -> None:
    applied: list[int] = []

    def apply_task(env: gymnasium.Env[Any, Any], task: Task) -> None:
        applied.append(task.task_id)
        inner = env.unwrapped
        assert isinstance(inner, ReachTarget)
        inner.target = 3 - int(task.env_cfg["target"])  # a different mapping than set_task

    fake = FakeCurriculum(targets=[0])
    env = CurriculumEnv(NoSetTask(), fake, apply_task=apply_task)
    env.reset()
    assert applied == [100]
    play(env, [3])
    assert fake.reports == [(100, HIT)]


def test_set_task_fallback_goes_through_outer_wrappers() -> None:
    inner = ReachTarget()
    wrapped = gymnasium.wrappers.TimeLimit(inner, max_episode_steps=50)
    env = CurriculumEnv(wrapped, FakeCurriculum(targets=[2]))
    env.reset()
    assert inner.target == 2


def test_no_set_task_and_no_apply_task_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"set_task.*apply_task"):
        CurriculumEnv(NoSetTask(), FakeCurriculum())


def test_step_before_reset_is_an_error() -> None:
    env = CurriculumEnv(ReachTarget(), FakeCurriculum())
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)


def test_close_flushes_the_curriculum_and_closes_the_env() -> None:
    closed: list[bool] = []

    class Closing(ReachTarget):
        def close(self) -> None:
            closed.append(True)

    fake = FakeCurriculum()
    env = CurriculumEnv(Closing(), fake)
    env.reset()
    env.close()
    assert fake.flushes == 1 and closed == [True]


def test_with_a_real_curriculum_in_memory() -> None:
    config = CurriculumConfig(
        task_generator=BucketedTaskGenerator(buckets={"target": [0, 1, 2, 3]}),
        algorithm=LearningProgressConfig(num_active_tasks=4, score_range=(MAX_STEPS * MISS, HIT)),
        buffer=BufferConfig(batch_size=1),
    )
    curriculum = Curriculum(config)
    env = CurriculumEnv(ReachTarget(), curriculum, success_key="is_success")
    finished = 0
    _, info = env.reset(seed=0)
    for step in range(40):
        _, _, terminated, truncated, info = env.step(step % 4)
        assert info["task_label"].startswith("bucketed:target=")
        if terminated or truncated:
            finished += 1
            env.reset()
    env.close()
    assert curriculum.stats()["num_completed"] == finished > 0


# ------------------------------------------------------------------------------------------ vector envs


NUM_ENVS = 4
NUM_STEPS = 60


def redis_config(redis_url: str, namespace: str) -> CurriculumConfig:
    return CurriculumConfig(
        redis_url=redis_url,
        namespace=namespace,
        task_generator=BucketedTaskGenerator(buckets={"target": [0, 1, 2, 3]}),
        # score_range covers every return (-1.25 .. 1); no eviction, so every outcome lands on a live task.
        algorithm=LearningProgressConfig(
            num_active_tasks=8, score_range=(MAX_STEPS * MISS, HIT), max_evictions_per_refresh=0
        ),
        buffer=BufferConfig(batch_size=1),
    )


def run_vector_env(vec: gymnasium.vector.VectorEnv[Any, Any, Any]) -> int:
    """Step ``vec`` with seeded random actions; returns the number of finished episodes."""
    rng = np.random.default_rng(7)
    _, info = vec.reset(seed=0)
    assert np.all(info["task_id"] > 0)
    finished = 0
    for _ in range(NUM_STEPS):
        _, _, terminated, truncated, info = vec.step(rng.integers(0, 4, size=NUM_ENVS))
        finished += int(np.count_nonzero(terminated | truncated))
        assert "task_label" in info
    vec.close()
    return finished


def make_factory(curriculum: Curriculum) -> Any:
    def make() -> CurriculumEnv[int, int]:
        return CurriculumEnv(ReachTarget(), curriculum)

    return make


def recorded(redis_url: str, namespace: str) -> dict[str, int]:
    store = RedisStore.from_url(redis_url, namespace)
    try:
        return store.counters()
    finally:
        store.close()


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_async_vector_env_records_every_finished_episode_once(redis_url: str, context: str) -> None:
    curriculum = Curriculum(redis_config(redis_url, "vec-async"))
    vec = gymnasium.vector.AsyncVectorEnv([make_factory(curriculum) for _ in range(NUM_ENVS)], context=context)
    finished = run_vector_env(vec)
    assert finished > NUM_ENVS
    counters = recorded(redis_url, "vec-async")
    assert counters["num_completed"] == finished
    assert counters["num_outcomes_for_evicted_tasks"] == 0
    assert Curriculum(redis_config(redis_url, "vec-async")).stats()["num_completed"] == finished


@pytest.mark.redis
def test_sync_vector_env_records_every_finished_episode_once(redis_url: str) -> None:
    curriculum = Curriculum(redis_config(redis_url, "vec-sync"))
    vec = gymnasium.vector.SyncVectorEnv([make_factory(curriculum) for _ in range(NUM_ENVS)])
    finished = run_vector_env(vec)
    assert finished > NUM_ENVS
    counters = recorded(redis_url, "vec-sync")
    assert counters["num_completed"] == finished
    assert counters["num_outcomes_for_evicted_tasks"] == 0
