"""The simulated student (:mod:`curriculum_redis.demo.student`) as a one-step gymnasium env, in two task spaces.

- ``student-chain``: ``benchmarks/quality.py``'s space: learnable levels 1..6 gated in a chain, one
  mastered and one impossible label.
- ``student-families``: three independent learnable families of different learning rates (a fast one
  needs about 800 episodes, the slowest about 8x more), three impossible and three mastered families.
  Uniform sampling spends two thirds of the budget on tasks that teach nothing.

The performance is the mean success probability over learnable tasks; a task is solved (mastered) at 0.9.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from benchmarks.quality_suite.core import BoolArray, FloatArray, TaskSpace
from curriculum_redis import BucketedTaskGenerator, TaskGeneratorSet
from curriculum_redis.demo.student import SimulatedStudent, StudentParams, student_task_generator

MASTERED = 0.9
FAMILY_RATES = (0.002, 0.0005, 0.00025)
N_CHAIN_LEVELS = 6


class StudentEnv(gymnasium.Env[int, int]):
    """One episode = one step: the reward is the student's success (1/0) on the task set by ``task``."""

    observation_space = gymnasium.spaces.Discrete(1)
    action_space = gymnasium.spaces.Discrete(1)

    def __init__(self, play: Any) -> None:
        self._play = play
        self.task: Mapping[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        return 0, float(self._play(self.task)), True, False, {}


class StudentRunBase:
    configs: list[dict[str, Any]]
    env: gymnasium.Env[Any, Any]

    def apply(self, env: gymnasium.Env[Any, Any], cfg: Mapping[str, Any]) -> None:
        env.unwrapped.task = cfg

    def play(self, env: gymnasium.Env[Any, Any]) -> tuple[float, float]:
        env.reset()
        _, reward, _, _, _ = env.step(0)
        return float(reward), 0.0

    def success(self, cfg: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def evaluate(self) -> FloatArray:
        return np.array([self.success(cfg) for cfg in self.configs])

    def oracle(self, rng: np.random.Generator, solved: BoolArray) -> int:
        """The first learnable task (in the order of ``configs``) not mastered yet."""
        learnable = [i for i, c in enumerate(self.configs) if c["kind"] == "learnable"]
        for i in learnable:
            if not solved[i]:
                return i
        return int(learnable[int(rng.integers(len(learnable)))])


def _space(configs: list[dict[str, Any]], generator: Any, key: Any) -> TaskSpace:
    kinds = np.array([c["kind"] for c in configs])
    index = {key(c): i for i, c in enumerate(configs)}
    return TaskSpace(configs, kinds == "impossible", kinds == "learnable", generator, lambda c: index[key(c)])


def _thresholds(configs: list[dict[str, Any]]) -> FloatArray:
    return np.array([np.inf if c["kind"] == "impossible" else MASTERED for c in configs])


# -- the chain of levels (benchmarks/quality.py) ------------------------------------------------------


def _chain_configs() -> list[dict[str, Any]]:
    learnable = [{"kind": "learnable", "level": level} for level in range(1, N_CHAIN_LEVELS + 1)]
    return [*learnable, {"kind": "mastered", "level": 1}, {"kind": "impossible", "level": 1}]


@dataclass(frozen=True)
class ChainBenchmark:
    name: str = "student-chain"
    episodes: int = 30_000
    checkpoints: int = 40
    endless: bool = False
    """An endless generator (random task ids: many tasks per level, each with its own statistics), as
    the demo runs it: the pool (256 tasks) evicts and admits tasks all run long."""

    def space(self) -> TaskSpace:
        generator = student_task_generator(n_levels=N_CHAIN_LEVELS, finite=not self.endless)
        return _space(_chain_configs(), generator, lambda c: (c["kind"], int(c["level"])))

    def solved_threshold(self) -> FloatArray:
        return _thresholds(_chain_configs())

    def new_run(self, seed: int) -> ChainRun:
        return ChainRun(seed)


class ChainRun(StudentRunBase):
    def __init__(self, seed: int) -> None:
        self.student = SimulatedStudent(seed=seed, n_levels=N_CHAIN_LEVELS)
        self.configs = _chain_configs()
        self.env = StudentEnv(self.student.episode)

    def success(self, cfg: Mapping[str, Any]) -> float:
        return float(self.student.success_probability(cfg))


# -- independent families of different learning rates -------------------------------------------------


def _family_configs() -> list[dict[str, Any]]:
    return [{"kind": kind, "family": f} for kind in ("learnable", "mastered", "impossible") for f in (1, 2, 3)]


@dataclass(frozen=True)
class FamiliesBenchmark:
    name: str = "student-families"
    episodes: int = 20_000
    checkpoints: int = 40

    def space(self) -> TaskSpace:
        generator = TaskGeneratorSet(generators=[
            BucketedTaskGenerator(buckets={"kind": [kind], "family": [1, 2, 3]}, label="student", finite=True)
            for kind in ("impossible", "mastered", "learnable")  # the pool follows this order: useful ones last
        ])  # fmt: skip
        return _space(_family_configs(), generator, lambda c: (c["kind"], int(c["family"])))

    def solved_threshold(self) -> FloatArray:
        return _thresholds(_family_configs())

    def new_run(self, seed: int) -> FamiliesRun:
        return FamiliesRun(seed)


class FamiliesRun(StudentRunBase):
    """Each learnable family is a one-level student of its own learning rate (no transfer between them)."""

    def __init__(self, seed: int) -> None:
        self.families = [SimulatedStudent(seed=seed * 10 + i, n_levels=1, params=StudentParams(learning_rate=lr))
                         for i, lr in enumerate(FAMILY_RATES)]  # fmt: skip
        self.configs = _family_configs()
        self.env = StudentEnv(self._episode)

    def _as_level(self, cfg: Mapping[str, Any]) -> tuple[SimulatedStudent, dict[str, Any]]:
        return self.families[int(cfg["family"]) - 1], {"kind": cfg["kind"], "level": 1}

    def _episode(self, cfg: Mapping[str, Any]) -> float:
        student, level_cfg = self._as_level(cfg)
        return float(student.episode(level_cfg))

    def success(self, cfg: Mapping[str, Any]) -> float:
        student, level_cfg = self._as_level(cfg)
        return float(student.success_probability(level_cfg))

    def oracle(self, rng: np.random.Generator, solved: BoolArray) -> int:
        """The fastest learnable family not mastered yet: the most families within the budget."""
        return super().oracle(rng, solved)
