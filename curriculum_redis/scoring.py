"""The learning-progress algorithm as pure functions: per-outcome EMA updates and score -> probability.

``apply_outcome`` is the reference implementation of what ``lua/record_outcomes.lua`` does on the
server (same operations in the same order, so both give bit-identical doubles); the in-process store
uses it directly. The distribution functions are vectorised numpy over a snapshot, shared by every store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from curriculum_redis.config import LearningProgressConfig
from curriculum_redis.errors import InvalidScoreError

FloatArray = npt.NDArray[np.float64]

FIRST_SCORE_BASELINE_CAP = 0.75
"""With ``random_baseline=None`` a task's baseline is its first score, capped so it can still progress."""


def normalize_score(raw: float, score_range: tuple[float, float]) -> float:
    """Map a raw score onto [0, 1] with the configured range, clipping; refuse NaN, inf and non-numbers."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | np.floating | np.integer):
        raise InvalidScoreError(f"score must be a real number, got {type(raw).__name__} {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise InvalidScoreError(f"score must be finite, got {value!r}")
    lo, hi = score_range
    return min(1.0, max(0.0, (value - lo) / (hi - lo)))


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
) -> tuple[npt.NDArray[np.intp], float]:
    """Indices of at most ``limit`` evictable tasks (lowest LP first) and the LP threshold they passed.

    A task is evictable when it has ``min_presentations_for_eviction`` outcomes and its LP is at or
    below the ``eviction_threshold_percentile`` quantile of the pool's LP. The threshold goes to the
    server, which re-checks the task against it before evicting.
    """
    if lp.size == 0 or limit <= 0:
        return np.zeros(0, dtype=np.intp), 0.0
    threshold = float(np.quantile(lp, cfg.eviction_threshold_percentile))
    ok = (np.asarray(completions) >= cfg.min_presentations_for_eviction) & (lp <= threshold)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(lp[idx], kind="stable")]
    return order[:limit], threshold


def gini(values: FloatArray) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, towards 1 when one holds everything."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = float(x.sum())
    if n == 0 or total <= 0.0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2.0 * np.dot(ranks, x)) / (n * total) - (n + 1.0) / n)
