"""MiniGrid rooms of growing size: a task is (room size, step budget) of minigrid's ``EmptyEnv``.

The agent starts in the top-left corner facing right; the goal is in the bottom-right corner. One
tabular Q-learner over a symbolic state, the agent's offset to the goal and its direction, is shared by
every room, so what is learnt in small rooms (the last steps before the goal) carries over to the large
ones, where a random walk rarely reaches the goal within the budget (twice the shortest path). A third of
the tasks are impossible: rooms whose budget is one step short of the shortest path.

The env renders no partial view: ``gen_obs`` returns the symbolic state (the learner needs nothing
else, and the pixel observation would cost 15x the step). Performance: the share of possible rooms the
greedy policy solves (one deterministic rollout each).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from minigrid.envs import EmptyEnv

from benchmarks.quality_suite.core import BoolArray, FloatArray, TaskSpace
from curriculum_redis import BucketedTaskGenerator, TaskGeneratorSet

State = tuple[int, int, int]
SIZES = tuple(range(5, 17))
IMPOSSIBLE_SIZES = tuple(range(6, 17, 2))
N_ACTIONS = 3  # left, right, forward: the rest do nothing in an empty room


def shortest_path(size: int) -> int:
    """Moves from (1, 1) facing right to (size-2, size-2): 2 (size - 3) forwards and one turn."""
    return 2 * (size - 3) + 1


class SymbolicEmptyEnv(EmptyEnv):  # type: ignore[misc]
    """``EmptyEnv`` whose observation is ``(goal_x - x, goal_y - y, direction)``."""

    def gen_obs(self) -> State:
        x, y = self.agent_pos
        return (self.width - 2 - int(x), self.height - 2 - int(y), int(self.agent_dir))


class GridQLearner:
    def __init__(self, seed: int, eps: float = 0.1, alpha: float = 0.5, gamma: float = 0.99) -> None:
        self.q: dict[State, list[float]] = {}
        self.rng = random.Random(seed)
        self.eps, self.alpha, self.gamma = eps, alpha, gamma

    def row(self, s: State) -> list[float]:
        row = self.q.get(s)
        if row is None:
            row = self.q[s] = [0.0] * N_ACTIONS
        return row

    def act(self, s: State) -> int:
        if self.rng.random() < self.eps:
            return self.rng.randrange(N_ACTIONS)
        row = self.row(s)
        best = max(row)
        ties = [a for a, v in enumerate(row) if v == best]
        return ties[0] if len(ties) == 1 else self.rng.choice(ties)

    def greedy(self, s: State) -> int:
        row = self.row(s)
        return row.index(max(row))

    def update(self, s: State, a: int, r: float, s2: State, terminal: bool) -> float:
        target = r if terminal else r + self.gamma * max(self.row(s2))
        row = self.row(s)
        td = target - row[a]
        row[a] += self.alpha * td
        return abs(td)


def _configs() -> list[dict[str, Any]]:
    possible = [{"size": n, "max_steps": 2 * shortest_path(n)} for n in SIZES]
    impossible = [{"size": n, "max_steps": shortest_path(n) - 1} for n in IMPOSSIBLE_SIZES]
    return possible + impossible


@dataclass(frozen=True)
class GridBenchmark:
    name: str = "minigrid-rooms"
    episodes: int = 1200
    checkpoints: int = 40

    def space(self) -> TaskSpace:
        configs = _configs()
        index = {(c["size"], c["max_steps"]): i for i, c in enumerate(configs)}
        impossible = np.array([c["max_steps"] < shortest_path(c["size"]) for c in configs])
        # Sizes in a fixed random order: the pool follows it, so sorted sizes would hand the easy rooms first.
        shuffled = [int(x) for x in np.random.default_rng(2024).permutation(SIZES)]

        def rooms(located: bool) -> TaskGeneratorSet:
            where = ("size",) if located else ()
            return TaskGeneratorSet(generators=[
                BucketedTaskGenerator(buckets={"size": shuffled}, base={"budget": "2x"}, label="room",
                                      finite=True, coordinates=where),
                BucketedTaskGenerator(buckets={"size": list(IMPOSSIBLE_SIZES)}, base={"budget": "short"},
                                      label="room-short", finite=True, coordinates=where),
            ])  # fmt: skip

        return TaskSpace(configs, impossible, ~impossible, rooms(False), lambda cfg: index[_resolve(cfg)],
                         located=rooms(True))  # fmt: skip

    def solved_threshold(self) -> FloatArray:
        return np.array([np.inf if c["max_steps"] < shortest_path(c["size"]) else 1.0 for c in _configs()])

    def new_run(self, seed: int) -> GridRun:
        return GridRun(seed)


def _resolve(cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(size, max_steps) of a config from the uniform row (explicit) or from the library's generator."""
    size = int(cfg["size"])
    if "max_steps" in cfg:
        return size, int(cfg["max_steps"])
    steps = 2 * shortest_path(size) if cfg["budget"] == "2x" else shortest_path(size) - 1
    return size, steps


class GridRun:
    def __init__(self, seed: int) -> None:
        self.env: gymnasium.Env[Any, Any] = SymbolicEmptyEnv(size=SIZES[0])
        self.env.reset(seed=seed)
        self.eval_env = SymbolicEmptyEnv(size=SIZES[0])
        self.learner = GridQLearner(seed)
        self.configs = _configs()
        self.possible = [c["max_steps"] >= shortest_path(c["size"]) for c in self.configs]

    def apply(self, env: gymnasium.Env[Any, Any], cfg: Mapping[str, Any]) -> None:
        size, steps = _resolve(cfg)
        u = env.unwrapped
        u.width = u.height = size
        u.max_steps = steps

    def play(self, env: gymnasium.Env[Any, Any]) -> tuple[float, float]:
        s, _ = env.reset()
        learner, td_sum, steps = self.learner, 0.0, 0
        while True:
            a = learner.act(s)
            s2, r, terminated, truncated, _ = env.step(a)
            # The learner is rewarded for success only: minigrid's reward decays with the step count,
            # which its state (no clock) cannot see.
            td_sum += learner.update(s, a, 1.0 if r > 0 else 0.0, s2, terminated)
            steps += 1
            s = s2
            if terminated or truncated:
                return (1.0 if r > 0 else 0.0), td_sum / steps

    def evaluate(self) -> FloatArray:
        out = np.zeros(len(self.configs))
        for i, cfg in enumerate(self.configs):
            if not self.possible[i]:
                continue
            self.apply(self.eval_env, cfg)
            s, _ = self.eval_env.reset()
            while True:
                s, r, terminated, truncated, _ = self.eval_env.step(self.learner.greedy(s))
                if terminated or truncated:
                    out[i] = 1.0 if r > 0 else 0.0
                    break
        return out

    def oracle(self, rng: np.random.Generator, solved: BoolArray) -> int:
        """The smallest possible room not solved yet (uniform over possible rooms once all are)."""
        open_ = [i for i, ok in enumerate(self.possible) if ok]
        unsolved = [i for i in open_ if not solved[i]]
        if unsolved:
            return min(unsolved, key=lambda i: self.configs[i]["size"])
        return int(open_[int(rng.integers(len(open_)))])
