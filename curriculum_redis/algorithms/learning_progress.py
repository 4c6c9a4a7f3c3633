"""Learning progress (see README, "The algorithm"): its config, its maths and its Python mirror.

``apply_outcome`` is the reference implementation of ``lua/algorithm_learning_progress.lua`` (same
operations in the same order, so both give bit-identical doubles); the in-process store uses it directly.
The distribution functions are vectorised numpy over a snapshot, shared by every store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from curriculum_redis.algorithms.base import FloatArray, IndexArray, PoolAlgorithm, low_score_candidates
from curriculum_redis.config import PoolConfig, build
from curriculum_redis.errors import ConfigError

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot

FIRST_SCORE_BASELINE_CAP = 0.75
"""With ``random_baseline=None`` a task's baseline is its first score, capped so it can still progress."""

SCRIPTED_HYPERS = (
    "ema_timescale",
    "slow_timescale_factor",
    "tracker_ema_alpha",
    "early_progress_amplification",
)
"""Hyperparameters the Lua update reads from meta (with ``scorer`` and ``random_baseline``)."""


class LearningProgressConfig(PoolConfig):
    """Hyperparameters of the learning-progress algorithm (see README, "The algorithm")."""

    SAFE: ClassVar[frozenset[str]] = PoolConfig.SAFE | {
        "exploration_bonus",
        "min_samples_for_lp",
        "z_score_amplification",
        "lp_score_temperature",
        "progress_smoothing",
        "performance_bonus_weight",
        "lp_noise_correction",
        "rand_task_rate",
    }

    algorithm: Literal["learning_progress"] = "learning_progress"
    use_bidirectional: bool = True
    ema_timescale: float = Field(0.1, gt=0.0, le=1.0)
    slow_timescale_factor: float = Field(0.2, gt=0.0, le=1.0)
    exploration_bonus: float = Field(0.1, ge=0.0)
    min_samples_for_lp: int = Field(10, ge=1)
    z_score_amplification: float = Field(10.0, gt=0.0)
    lp_score_temperature: float = Field(0.0, ge=0.0)
    progress_smoothing: float = Field(0.0, ge=0.0)
    performance_bonus_weight: float = Field(0.0, ge=0.0)
    lp_noise_correction: float = Field(0.0, ge=0.0)
    """z: subtract z standard deviations of the fast/slow EMA gap a task with a constant success rate
    would show anyway (0 keeps the reference algorithm; see README, "Noise-corrected LP")."""
    early_progress_amplification: float = Field(0.5, gt=0.0, lt=1.0)
    random_baseline: float | None = Field(None, ge=0.0, lt=1.0)
    rand_task_rate: float = Field(0.01, ge=0.0, le=1.0)
    tracker_ema_alpha: float = Field(0.02, gt=0.0, le=1.0)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LearningProgressConfig:
        """A named preset (``default`` = ``reference``, ``stable``, ``fast_learning``) with fields overridden."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
        return build(cls, {**PRESETS[name], **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The library's default algorithm before frontier LP, unchanged: what a config naming it gets.
    "reference": {},
    # Slower EMAs and more evidence before a task counts: less noise-chasing, for long runs.
    "stable": {
        "ema_timescale": 0.05,
        "slow_timescale_factor": 0.2,
        "min_samples_for_lp": 20,
        "z_score_amplification": 5.0,
        "min_presentations_for_eviction": 20,
        "max_evictions_per_refresh": 2,
    },
    # Faster EMAs and quicker eviction: for short runs or tasks that are learned in few episodes.
    "fast_learning": {
        "ema_timescale": 0.2,
        "slow_timescale_factor": 0.3,
        "min_samples_for_lp": 5,
        "min_presentations_for_eviction": 3,
        "max_evictions_per_refresh": 8,
        "exploration_bonus": 0.2,
    },
}


@dataclass(frozen=True, slots=True)
class TaskState:
    """Everything stored per task; the field names are the Redis hash fields."""

    label_hash: int
    slot: int = 0
    completions: int = 0
    score_sum: float = 0.0
    last_score: float = 0.0
    reward_ema: float = 0.0
    reward_sq_ema: float = 0.0
    success_ema: float = 0.0
    p_fast: float = 0.0
    p_slow: float = 0.0
    p_true: float = 0.0
    baseline: float = 0.0
    lp: float = 0.0
    consecutive_failures: int = 0


def reweight(p: float, theta: float) -> float:
    """``R(p)``: amplifies progress at low success when ``theta < 0.5``; the identity at 0.5."""
    return p * (1.0 - theta) / (p + theta * (1.0 - 2.0 * p))


def apply_outcome(state: TaskState, score: float, cfg: LearningProgressConfig) -> TaskState:
    """The task's state after one normalised outcome ``score`` in [0, 1]."""
    s = score
    success = 1.0 if s >= cfg.success_threshold else 0.0
    a = cfg.ema_timescale
    ta = cfg.tracker_ema_alpha
    if state.completions == 0:
        baseline = cfg.random_baseline if cfg.random_baseline is not None else min(s, FIRST_SCORE_BASELINE_CAP)
        p = max(s - baseline, 0.0) / max(1.0 - baseline, 1e-10)
        reward_ema, reward_sq_ema, success_ema = s, s * s, success
        p_fast, p_slow, p_true = p, p, s
    else:
        baseline = state.baseline
        p = max(s - baseline, 0.0) / max(1.0 - baseline, 1e-10)
        reward_ema = state.reward_ema + ta * (s - state.reward_ema)
        reward_sq_ema = state.reward_sq_ema + ta * (s * s - state.reward_sq_ema)
        success_ema = state.success_ema + ta * (success - state.success_ema)
        p_fast = state.p_fast + a * (p - state.p_fast)
        p_slow = state.p_slow + a * cfg.slow_timescale_factor * (p - state.p_slow)
        p_true = state.p_true + a * (s - state.p_true)
    if cfg.use_bidirectional:
        theta = cfg.early_progress_amplification
        lp = abs(reweight(p_fast, theta) - reweight(p_slow, theta))
    else:
        lp = math.sqrt(max(0.0, reward_sq_ema - reward_ema * reward_ema))
    return replace(
        state,
        completions=state.completions + 1,
        score_sum=state.score_sum + s,
        last_score=s,
        reward_ema=reward_ema,
        reward_sq_ema=reward_sq_ema,
        success_ema=success_ema,
        p_fast=p_fast,
        p_slow=p_slow,
        p_true=p_true,
        baseline=baseline,
        lp=lp,
    )


def ema_gap_noise_factor(cfg: LearningProgressConfig) -> float:
    """Var(p_fast - p_slow) / Var(p) for i.i.d. outcomes: what the gap shows with no learning at all.

    With EMA rates ``a`` (fast) and ``b = a*k`` (slow): ``a/(2-a) + b/(2-b) - 2ab/(a+b-ab)``.
    """
    a = cfg.ema_timescale
    b = cfg.ema_timescale * cfg.slow_timescale_factor
    return a / (2.0 - a) + b / (2.0 - b) - 2.0 * a * b / (a + b - a * b)


def effective_lp(
    lp: FloatArray,
    reward_ema: FloatArray,
    reward_sq_ema: FloatArray,
    baseline: FloatArray,
    cfg: LearningProgressConfig,
) -> FloatArray:
    """The LP that sampling and eviction use: the raw LP, or with ``lp_noise_correction = z > 0``,
    ``max(0, lp - z * sd)`` where ``sd`` is the standard deviation of the EMA gap that the task's own
    score variance would produce if it were not changing (a task solved 95% of the time, scored 0/1,
    shows an LP of noise that the reference algorithm reads as progress)."""
    z = cfg.lp_noise_correction
    if z <= 0.0 or not cfg.use_bidirectional:
        return lp
    variance = np.maximum(0.0, reward_sq_ema - reward_ema * reward_ema) / np.maximum(1.0 - baseline, 1e-10) ** 2
    return np.asarray(np.maximum(0.0, lp - z * np.sqrt(ema_gap_noise_factor(cfg) * variance)), dtype=np.float64)


def sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -500.0, 500.0))), dtype=np.float64)


def lp_weights(lp: FloatArray, p_true: FloatArray, cfg: LearningProgressConfig) -> FloatArray:
    """Probabilities over eligible tasks only (the reference normalised over all tasks: its bug 4.2)."""
    if lp.size == 0:
        return np.zeros(0)
    x = lp + cfg.progress_smoothing + cfg.performance_bonus_weight * p_true
    if cfg.lp_score_temperature > 0.0:
        x = x / cfg.lp_score_temperature
    else:
        std = float(x.std())
        # All-equal scores: no z-score to take, every eligible task weighs the same.
        x = (x - x.mean()) / std * cfg.z_score_amplification if std > 1e-10 else np.zeros_like(x)
    w = sigmoid(x)
    total = float(w.sum())
    if not math.isfinite(total) or total <= 0.0:
        return np.full(lp.size, 1.0 / lp.size)
    return np.asarray(w / total, dtype=np.float64)


def task_distribution(
    completions: npt.NDArray[np.float64] | npt.NDArray[np.int64],
    lp: FloatArray,
    p_true: FloatArray,
    cfg: LearningProgressConfig,
) -> FloatArray:
    """Sampling probability of each task in the pool; sums to 1, never NaN.

    Rule: eligible tasks (``completions >= min_samples_for_lp``) share ``1 - M`` by :func:`lp_weights`;
    young tasks share the exploration mass ``M = Y(1+b) / (Y(1+b) + E)`` equally, where ``Y`` and ``E``
    count young and eligible tasks and ``b`` is ``exploration_bonus`` (each young task is drawn ``1+b``
    times as often as an average eligible one, so it reaches eligibility). Finally ``rand_task_rate``
    of the mass is spread uniformly over the whole pool.
    """
    n = int(lp.size)
    if n == 0:
        return np.zeros(0)
    eligible = np.asarray(completions) >= cfg.min_samples_for_lp
    n_eligible = int(eligible.sum())
    n_young = n - n_eligible
    probs = np.zeros(n)
    young_weight = n_young * (1.0 + cfg.exploration_bonus)
    young_mass = young_weight / (young_weight + n_eligible)
    if n_eligible:
        probs[eligible] = (1.0 - young_mass) * lp_weights(lp[eligible], p_true[eligible], cfg)
    if n_young:
        probs[~eligible] = young_mass / n_young
    probs = (1.0 - cfg.rand_task_rate) * probs + cfg.rand_task_rate / n
    return np.asarray(probs / probs.sum(), dtype=np.float64)


def eviction_candidates(
    completions: npt.NDArray[np.float64] | npt.NDArray[np.int64],
    lp: FloatArray,
    cfg: LearningProgressConfig,
    limit: int,
) -> tuple[IndexArray, float]:
    """Indices of at most ``limit`` evictable tasks (lowest LP first) and the LP threshold they passed.

    A task is evictable when it has ``min_presentations_for_eviction`` outcomes and its LP is at or
    below the ``eviction_threshold_percentile`` quantile of the pool's LP. The threshold goes to the
    server, which re-checks the task against it before evicting.
    """
    return low_score_candidates(
        np.asarray(completions, dtype=np.float64), lp, cfg.eviction_threshold_percentile,
        cfg.min_presentations_for_eviction, limit,
    )  # fmt: skip


class LearningProgress(PoolAlgorithm):
    name = "learning_progress"
    config_class = LearningProgressConfig
    score_field = "lp"
    state_fields = ("reward_ema", "reward_sq_ema", "success_ema", "p_fast", "p_slow", "p_true", "baseline")

    def meta_fields(self, cfg: LearningProgressConfig) -> dict[str, str]:
        fields = {name: repr(float(getattr(cfg, name))) for name in SCRIPTED_HYPERS}
        fields["scorer"] = "bidirectional" if cfg.use_bidirectional else "variance"
        fields["random_baseline"] = "" if cfg.random_baseline is None else repr(float(cfg.random_baseline))
        return fields

    def update(
        self, state: dict[str, float], x: float, success: float, cfg: LearningProgressConfig, clock: int
    ) -> float:
        before = TaskState(
            label_hash=0, completions=int(state["completions"]), reward_ema=state["reward_ema"],
            reward_sq_ema=state["reward_sq_ema"], success_ema=state["success_ema"], p_fast=state["p_fast"],
            p_slow=state["p_slow"], p_true=state["p_true"], baseline=state["baseline"],
        )  # fmt: skip
        after = apply_outcome(before, x, cfg)
        for name in self.state_fields:
            state[name] = getattr(after, name)
        state["lp"] = after.lp
        return after.lp

    def effective(self, snapshot: ScoreSnapshot, cfg: LearningProgressConfig) -> FloatArray:
        return effective_lp(
            snapshot.column("lp"), snapshot.column("reward_ema"), snapshot.column("reward_sq_ema"),
            snapshot.column("baseline"), cfg,
        )  # fmt: skip

    def distribution(self, snapshot: ScoreSnapshot, cfg: LearningProgressConfig) -> FloatArray:
        return task_distribution(snapshot.column("completions"), self.effective(snapshot, cfg),
                                 snapshot.column("p_true"), cfg)  # fmt: skip

    def eviction_candidates(
        self, snapshot: ScoreSnapshot, cfg: LearningProgressConfig, limit: int
    ) -> tuple[IndexArray, FloatArray]:
        effective = self.effective(snapshot, cfg)
        idx, threshold = eviction_candidates(snapshot.column("completions"), effective, cfg, limit)
        if cfg.lp_noise_correction == 0.0:
            # The server re-checks the raw LP against the percentile.
            return idx, np.full(idx.size, threshold)
        # Sampling uses the corrected LP: the victim's raw LP must not have risen since this snapshot.
        return idx, snapshot.column("lp")[idx]
