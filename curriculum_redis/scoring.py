"""Re-exports of the learning-progress maths of :mod:`curriculum_redis.algorithms.learning_progress`, for the
modules that import them from here."""

from curriculum_redis.algorithms.learning_progress import (
    FIRST_SCORE_BASELINE_CAP,
    TaskState,
    apply_outcome,
    effective_lp,
    ema_gap_noise_factor,
    eviction_candidates,
    lp_weights,
    reweight,
    sigmoid,
    task_distribution,
)
from curriculum_redis.config import normalize_score
from curriculum_redis.stats import gini

__all__ = [
    "FIRST_SCORE_BASELINE_CAP",
    "TaskState",
    "apply_outcome",
    "effective_lp",
    "ema_gap_noise_factor",
    "eviction_candidates",
    "gini",
    "lp_weights",
    "normalize_score",
    "reweight",
    "sigmoid",
    "task_distribution",
]
