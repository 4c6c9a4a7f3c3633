"""A simulated student: a cheap, deterministic learner on whose progress the choice of curriculum matters.

The task space (:func:`student_task_generator`) has three kinds of task, each a label of its own:

- ``learnable`` levels ``1..n``: level ``L`` is solved with probability
  ``p_L = sigmoid(k * (skill_L + transfer * skill_{L-1} - 1))``, where ``skill_0`` is 1 (the student
  starts with the basics). A new level is thus nearly unsolvable (``p ~ 0.002``) until the level below
  has been learned, and then solvable now and then (a few percent): learning level ``L-1`` makes level
  ``L`` *visible*, not learned.
- ``mastered`` tasks are solved with probability 0.95 whatever happens, and teach nothing.
- ``impossible`` tasks always score 0, and teach nothing.

Each episode on learnable level ``L`` raises ``skill_L`` by
``learning_rate * p_{L-1}**gating_power * (zpd_floor + 4 p_L (1 - p_L))`` (with ``p_0 = 1``). The last
factor is largest when success is intermediate (the zone of proximal development): a task that is always
solved, or never, teaches about 50 times less (``zpd_floor`` 0.02). The first gates a level behind the one
below it (``gating_power`` 8: readiness 0.43 when level ``L-1`` is solved 90% of the time, 0.92 at 99%):
practising level 3 while level 2 is unlearned is wasted. Nothing is learned on a level without practising
it; ``skill_L`` only grows, and ``mastered_levels()`` counts the levels solved at least 90% of the time.

Why a curriculum matters here: a fixed episode budget is spent well only on the current frontier level.
Uniform sampling spends a quarter of it (with the default 6 levels, 1 mastered, 1 impossible label) on
tasks that teach nothing, and most of the rest on levels that are either already learned or still gated,
so it masters levels one after another several times slower than a curriculum that stays on the
frontier. A learning-progress curriculum sees the frontier as the tasks whose success rate is changing,
and impossible tasks as flat. Success is a Bernoulli draw, so scores are as noisy as episode returns; a
mastered task's 5% of failures is noise a learning-progress estimate can mistake for progress.

The student is deterministic given its seed (one numpy ``Generator``). Its skills may live in a shared
buffer (any float64 array, e.g. a view on ``multiprocessing`` shared memory) guarded by a lock, so that
several actor processes train one learner; see :mod:`curriculum_redis.demo`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from curriculum_redis.tasks import BucketedTaskGenerator, TaskGenerator, TaskGeneratorSet

TaskKind = Literal["learnable", "mastered", "impossible"]
KINDS: tuple[TaskKind, ...] = ("learnable", "mastered", "impossible")
LABEL_PREFIX = "student"
BASE_SKILL = 1.0
"""``skill_0``: what the student knows before level 1, so level 1 is within reach from the start."""


def student_task_generator(
    n_levels: int = 6, mastered: int = 1, impossible: int = 1, finite: bool = False
) -> TaskGeneratorSet:
    """Tasks of every kind, each (kind, level) bucket equally likely, labelled like
    ``student:kind=learnable,level=3`` or ``student:kind=impossible,level=1``.

    The env config is ``{"kind": ..., "level": ...}``. ``mastered`` and ``impossible`` give how many
    levels (hence labels) of those kinds exist; 0 leaves the kind out. ``finite``: one task id per
    (kind, level), so a pool holds each once.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if mastered < 0 or impossible < 0:
        raise ValueError(f"mastered and impossible must be >= 0, got {mastered} and {impossible}")
    generators = []
    weights = []
    for kind, levels in (("learnable", n_levels), ("mastered", mastered), ("impossible", impossible)):
        if levels:
            buckets: dict[str, list[Any]] = {"kind": [kind], "level": list(range(1, levels + 1))}
            generators.append(BucketedTaskGenerator(buckets=buckets, label=LABEL_PREFIX, finite=finite))
            weights.append(float(levels))
    return TaskGeneratorSet(generators=generators, weights=None if finite else weights)


def task_kind(env_cfg: Mapping[str, Any]) -> tuple[TaskKind, int]:
    """The ``(kind, level)`` of a student task's env config; ValueError for anything else."""
    kind = env_cfg.get("kind")
    level = env_cfg.get("level")
    if kind not in KINDS or isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise ValueError(f"not a student task config: {dict(env_cfg)!r}")
    return kind, level


def label_kind(label: str) -> TaskKind | None:
    """The kind named in a student task label, or None for a label of another generator."""
    if not label.startswith(LABEL_PREFIX + ":"):
        return None
    for kind in KINDS:
        if f"kind={kind}" in label:
            return kind
    return None


@dataclass(frozen=True)
class StudentParams:
    """The learning model's constants (see the module docstring)."""

    learning_rate: float = 0.002
    steepness: float = 6.0
    transfer: float = 0.5
    zpd_floor: float = 0.02
    gating_power: float = 8.0
    mastered_success: float = 0.95

    def __post_init__(self) -> None:
        if not self.learning_rate >= 0.0 or not math.isfinite(self.learning_rate):
            raise ValueError(f"learning_rate must be finite and >= 0, got {self.learning_rate}")
        if not 0.0 <= self.mastered_success <= 1.0:
            raise ValueError(f"mastered_success must be in [0, 1], got {self.mastered_success}")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, x))))


class SimulatedStudent:
    """One learner with a skill per learnable level.

    ``skills`` (length ``n_levels``, float64) may be supplied to share the learner between processes;
    ``lock`` then makes each episode's read-and-update of the skills atomic.
    """

    def __init__(
        self,
        seed: int = 0,
        n_levels: int = 6,
        params: StudentParams | None = None,
        *,
        skills: npt.NDArray[np.float64] | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        if n_levels < 1:
            raise ValueError(f"n_levels must be >= 1, got {n_levels}")
        self.n_levels = n_levels
        self.params = params or StudentParams()
        self.rng = np.random.default_rng(seed)
        if skills is None:
            skills = np.zeros(n_levels, dtype=np.float64)
        elif skills.shape != (n_levels,) or skills.dtype != np.float64:
            raise ValueError(
                f"skills must be a float64 array of shape ({n_levels},), got {skills.dtype} {skills.shape}"
            )
        self.skills = skills
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()

    # -- the model -------------------------------------------------------------------------------

    def _skill(self, level: int) -> float:
        return BASE_SKILL if level == 0 else float(self.skills[level - 1])

    def _level_probability(self, level: int) -> float:
        if level == 0:
            return 1.0
        x = self._skill(level) + self.params.transfer * self._skill(level - 1) - 1.0
        return _sigmoid(self.params.steepness * x)

    def _check_level(self, level: int) -> None:
        if level > self.n_levels:
            raise ValueError(f"level {level} is beyond this student's {self.n_levels} levels")

    def success_probability(self, env_cfg: Mapping[str, Any]) -> float:
        """The chance of solving the task now."""
        kind, level = task_kind(env_cfg)
        if kind == "impossible":
            return 0.0
        if kind == "mastered":
            return self.params.mastered_success
        self._check_level(level)
        with self._lock:
            return self._level_probability(level)

    def level_probabilities(self) -> list[float]:
        """Success probability of each learnable level, level 1 first."""
        with self._lock:
            return [self._level_probability(level) for level in range(1, self.n_levels + 1)]

    def mastered_levels(self, threshold: float = 0.9) -> int:
        """How many learnable levels are solved with probability >= ``threshold``."""
        return sum(p >= threshold for p in self.level_probabilities())

    # -- acting ----------------------------------------------------------------------------------

    def episode(self, env_cfg: Mapping[str, Any], rng: np.random.Generator | None = None) -> float:
        """Play one episode: 1.0 on success, 0.0 on failure; a learnable level is learned a little."""
        kind, level = task_kind(env_cfg)
        draw = (rng or self.rng).random()
        if kind == "impossible":
            return 0.0
        if kind == "mastered":
            return 1.0 if draw < self.params.mastered_success else 0.0
        self._check_level(level)
        params = self.params
        with self._lock:
            p = self._level_probability(level)
            readiness = self._level_probability(level - 1) ** params.gating_power
            self.skills[level - 1] += params.learning_rate * readiness * (params.zpd_floor + 4.0 * p * (1.0 - p))
        return 1.0 if draw < p else 0.0


def train_uniform(
    student: SimulatedStudent,
    generator: TaskGenerator,
    episodes: int,
    rng: np.random.Generator,
    *,
    pool_size: int = 4096,
    every: int = 0,
) -> tuple[dict[TaskKind, int], list[tuple[int, int]]]:
    """Train ``student`` for ``episodes`` episodes on tasks drawn uniformly from ``generator``: the
    no-curriculum baseline. Tasks come from a pool of ``pool_size`` generated tasks (same distribution,
    without generating a task per episode).

    Returns the episodes spent on each kind, and ``(episodes done, mastered levels)`` every ``every``
    episodes (and at the end) when ``every`` > 0.
    """
    ids = rng.integers(1, 2**31, size=min(pool_size, max(episodes, 1)))
    configs = [generator.get_task(int(task_id)).env_cfg for task_id in ids]
    spent: dict[TaskKind, int] = dict.fromkeys(KINDS, 0)
    history: list[tuple[int, int]] = []
    picks = rng.integers(len(configs), size=episodes)
    for done, pick in enumerate(picks.tolist(), start=1):
        env_cfg = configs[pick]
        spent[env_cfg["kind"]] += 1
        student.episode(env_cfg)
        if every > 0 and done % every == 0:
            history.append((done, student.mastered_levels()))
    if every > 0 and (not history or history[-1][0] != episodes):
        history.append((episodes, student.mastered_levels()))
    return spent, history
