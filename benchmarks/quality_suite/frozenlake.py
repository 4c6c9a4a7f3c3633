"""FrozenLake reverse curricula: a task is a start cell of gymnasium's ``FrozenLake-v1``.

One tabular Q-learner is shared by every start (epsilon-greedy 0.1, alpha 0.5, gamma 0.99, at most 100
steps, reward 1 at the goal), so values learnt near the goal carry over to far starts: a curriculum that
trains the starts just beyond what is solved (the privileged *frontier* oracle) teaches far faster than
uniform sampling on maps with long corridors. A start is applied by making
``env.unwrapped.initial_state_distrib`` a one-hot before ``reset()``.

Maps are generated deterministically (fixed seeds): a one-wide corridor maze, a two-wide maze, a
slippery open map, and a map whose right half is sealed off from the goal (impossible starts).
Performance is the greedy policy's success over every start that can reach the goal, computed exactly by
dynamic programming on ``env.unwrapped.P`` (the probability of reaching the goal within 100 steps).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.toy_text.frozen_lake import generate_random_map

from benchmarks.quality_suite.core import BoolArray, FloatArray, TaskSpace
from curriculum_redis import BucketedTaskGenerator, SingleTaskGenerator, TaskGeneratorSet

HORIZON = 100
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))
"""FrozenLake's actions as (row, col) steps: left, down, right, up."""


def _carve_maze(rows: int, cols: int, seed: int) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    """A perfect maze on a rows x cols lattice (iterative depth-first search): the open lattice edges."""
    rng = random.Random(seed)
    seen = {(0, 0)}
    stack = [(0, 0)]
    edges: set[tuple[tuple[int, int], tuple[int, int]]] = set()
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in MOVES if 0 <= r + dr < rows and 0 <= c + dc < cols]
        options = [cell for cell in options if cell not in seen]
        if not options:
            stack.pop()
            continue
        nxt = rng.choice(options)
        seen.add(nxt)
        edges.add(((r, c), nxt))
        stack.append(nxt)
    return edges


def maze_map(size: int, width: int, seed: int, lattice: tuple[int, int] | None = None) -> list[list[str]]:
    """A maze with corridors ``width`` cells wide and one-cell hole walls, padded with holes to size x size."""
    step = width + 1
    rows, cols = lattice or ((size + 1) // step, (size + 1) // step)
    grid = [["H"] * size for _ in range(size)]
    for r in range(rows):
        for c in range(cols):
            for i in range(width):
                for j in range(width):
                    grid[r * step + i][c * step + j] = "F"
    for (r1, c1), (r2, c2) in _carve_maze(rows, cols, seed):
        r, c = min(r1, r2), min(c1, c2)
        for i in range(width):
            if r1 != r2:  # a vertical passage below lattice cell (r, c)
                grid[r * step + width][c * step + i] = "F"
            else:
                grid[r * step + i][c * step + width] = "F"
    return grid


def _finish(grid: list[list[str]], goal: tuple[int, int], start: tuple[int, int]) -> list[str]:
    grid[goal[0]][goal[1]] = "G"
    grid[start[0]][start[1]] = "S"
    return ["".join(row) for row in grid]


def corridor_map() -> list[str]:
    """12x12, one-wide corridors (a 6x6-cell perfect maze), goal in the top-left corner."""
    return _finish(maze_map(12, 1, seed=3), (0, 0), (10, 10))


def wide_map() -> list[str]:
    """12x12, two-wide corridors (a 4x4-cell perfect maze)."""
    return _finish(maze_map(12, 2, seed=5), (0, 0), (10, 10))


def slippery_map() -> list[str]:
    """8x8 open map with random holes (gymnasium's generator, fixed seed), played slippery."""
    return generate_random_map(size=8, p=0.85, seed=11)


def sealed_map() -> list[str]:
    """12x12: a one-wide maze on the left, a wall of holes, and another maze on the right that no path
    joins to the goal: half of the start cells can never succeed."""
    left = maze_map(12, 1, seed=7, lattice=(6, 3))
    right = maze_map(12, 1, seed=8, lattice=(6, 3))
    grid = [left[r][:6] + right[r][:6] for r in range(12)]
    return _finish(grid, (0, 0), (0, 6))


MAPS = {"corridor": (corridor_map, False), "wide": (wide_map, False), "slippery": (slippery_map, True),
        "sealed": (sealed_map, False)}  # fmt: skip


def transition_tensor(env: gymnasium.Env[Any, Any]) -> tuple[FloatArray, BoolArray, int]:
    """``T[a, s, s']`` from ``env.unwrapped.P`` (terminal states absorb), the terminal mask, the goal."""
    u = env.unwrapped
    n_s, n_a = u.observation_space.n, u.action_space.n
    desc = np.asarray(u.desc).ravel()
    terminal = (desc == b"H") | (desc == b"G")
    goal = int(np.flatnonzero(desc == b"G")[0])
    t = np.zeros((n_a, n_s, n_s))
    for s in range(n_s):
        for a in range(n_a):
            if terminal[s]:
                t[a, s, s] = 1.0
                continue
            for p, s2, _, _ in u.P[s][a]:
                t[a, s, s2] += p
    return t, terminal, goal


def reach_probability(t: FloatArray, goal: int, policy: np.ndarray | None) -> FloatArray:
    """P(goal within HORIZON steps) from each state, under ``policy`` (state -> action) or optimally."""
    v = np.zeros(t.shape[1])
    v[goal] = 1.0
    if policy is not None:
        m = t[policy, np.arange(t.shape[1])]
    for _ in range(HORIZON):
        v = m @ v if policy is not None else (t @ v).max(axis=0)
        v[goal] = 1.0
    return v


class QLearner:
    """Tabular epsilon-greedy Q-learning (random tie-breaks while acting, first index when greedy)."""

    def __init__(self, n_states: int, n_actions: int, seed: int, eps: float = 0.1, alpha: float = 0.5,
                 gamma: float = 0.99) -> None:  # fmt: skip
        self.q = [[0.0] * n_actions for _ in range(n_states)]
        self.n_actions = n_actions
        self.rng = random.Random(seed)
        self.eps, self.alpha, self.gamma = eps, alpha, gamma

    def act(self, s: int) -> int:
        if self.rng.random() < self.eps:
            return self.rng.randrange(self.n_actions)
        row = self.q[s]
        best = max(row)
        ties = [a for a, v in enumerate(row) if v == best]
        return ties[0] if len(ties) == 1 else self.rng.choice(ties)

    def update(self, s: int, a: int, r: float, s2: int, terminal: bool) -> float:
        target = r if terminal else r + self.gamma * max(self.q[s2])
        td = target - self.q[s][a]
        self.q[s][a] += self.alpha * td
        return abs(td)

    def greedy(self) -> np.ndarray:
        return np.asarray(np.argmax(np.asarray(self.q), axis=1))


def start_cell(cfg: Mapping[str, Any]) -> int:
    """The start cell of a task's env config."""
    return int(cfg["start"]["cell"])


@dataclass(frozen=True)
class FrozenLakeBenchmark:
    """One map; tasks are its non-hole, non-goal cells (starts that cannot reach the goal included)."""

    name: str
    map_name: str
    episodes: int
    checkpoints: int = 40

    def _env(self) -> gymnasium.Env[Any, Any]:
        make, slippery = MAPS[self.map_name]
        return gymnasium.make("FrozenLake-v1", desc=make(), is_slippery=slippery, max_episode_steps=HORIZON,
                              disable_env_checker=True)  # fmt: skip

    def _layout(self) -> tuple[list[int], FloatArray, FloatArray]:
        env = self._env()
        t, terminal, goal = transition_tensor(env)
        best = reach_probability(t, goal, None)
        cells = [s for s in range(t.shape[1]) if not terminal[s]]
        return cells, best, t

    def space(self) -> TaskSpace:
        cells, best, _ = self._layout()
        index = {cell: i for i, cell in enumerate(cells)}
        impossible = np.array([best[c] <= 0.0 for c in cells])
        # The library's pool follows the generator's order, and ties between equal scores follow the pool:
        # cells in map order would put the goal's neighbours first and leak the reverse curriculum.
        order = [int(c) for c in np.random.default_rng(2024).permutation(cells)]
        starts = [self._start(c) for c in order]
        generator = BucketedTaskGenerator(buckets={"start": starts}, label=f"frozenlake-{self.map_name}",
                                          label_format="start={start[cell]}", finite=True)  # fmt: skip
        located = generator.model_copy(update={"coordinates": ("start.row", "start.col")})
        return TaskSpace([{"start": self._start(c)} for c in cells], impossible, ~impossible, generator,
                         lambda cfg: index[start_cell(cfg)], self._blocks(order), located)  # fmt: skip

    def _start(self, cell: int) -> dict[str, int]:
        """A start cell as a task config: its index (what the env takes) and its row and column (where it
        is: the ``coordinates`` of rows that place tasks in task space)."""
        row, col = divmod(cell, self._ncol())
        return {"cell": cell, "row": row, "col": col}

    def _ncol(self) -> int:
        return int(self._env().unwrapped.ncol)  # type: ignore[attr-defined]

    def _blocks(self, cells: list[int]) -> TaskGeneratorSet:
        """One task per start cell, uniformly, labelled by its 3x3 block of the map (a label a user can
        choose without knowing the maze)."""
        ncol = self._ncol()
        return TaskGeneratorSet([
            SingleTaskGenerator({"start": self._start(c)},
                                label=f"{self.map_name}-block-{c // ncol // 3}-{c % ncol // 3}", finite=True)
            for c in cells
        ])  # fmt: skip

    def solved_threshold(self) -> FloatArray:
        cells, best, _ = self._layout()
        # Solved: the greedy policy does 90% as well as the best policy (1.0 on deterministic maps).
        return np.array([0.9 * best[c] if best[c] > 0 else np.inf for c in cells])

    def new_run(self, seed: int) -> FrozenLakeRun:
        return FrozenLakeRun(self, seed)


class FrozenLakeRun:
    def __init__(self, bench: FrozenLakeBenchmark, seed: int) -> None:
        self.env = bench._env()
        self.env.reset(seed=seed)
        self.t, _, self.goal = transition_tensor(self.env)
        self.cells, best, _ = bench._layout()
        self.possible = [best[c] > 0.0 for c in self.cells]
        n_s = self.t.shape[1]
        self.learner = QLearner(n_s, self.t.shape[0], seed)
        ncol = self.env.unwrapped.ncol
        where = {cell: i for i, cell in enumerate(self.cells)}
        self.neighbours: list[list[int]] = []
        for cell in self.cells:
            r, c = divmod(cell, ncol)
            near = [(r + dr) * ncol + c + dc for dr, dc in MOVES
                    if 0 <= r + dr < ncol and 0 <= c + dc < ncol]  # fmt: skip
            self.neighbours.append([where.get(s, -1) if s != self.goal else -2 for s in near])

    def apply(self, env: gymnasium.Env[Any, Any], cfg: Mapping[str, Any]) -> None:
        start = np.zeros(self.t.shape[1])
        start[start_cell(cfg)] = 1.0
        env.unwrapped.initial_state_distrib = start

    def play(self, env: gymnasium.Env[Any, Any]) -> tuple[float, float]:
        s, _ = env.reset()
        learner, td_sum, steps = self.learner, 0.0, 0
        while True:
            a = learner.act(s)
            s2, r, terminated, truncated, _ = env.step(a)
            td_sum += learner.update(s, a, float(r), s2, terminated)
            steps += 1
            s = s2
            if terminated or truncated:
                return (1.0 if r > 0 else 0.0), td_sum / steps

    def evaluate(self) -> FloatArray:
        v = reach_probability(self.t, self.goal, self.learner.greedy())
        return np.asarray(v[self.cells], dtype=np.float64)

    def oracle(self, rng: np.random.Generator, solved: BoolArray) -> int:
        """Uniform over the unsolved starts next to a solved one (or the goal); else over the unsolved."""
        open_ = [i for i, ok in enumerate(self.possible) if ok]
        frontier = [i for i in open_ if not solved[i]
                    and any(j == -2 or (j >= 0 and solved[j]) for j in self.neighbours[i])]  # fmt: skip
        if not frontier:
            frontier = [i for i in open_ if not solved[i]] or open_
        return int(frontier[int(rng.integers(len(frontier)))])
