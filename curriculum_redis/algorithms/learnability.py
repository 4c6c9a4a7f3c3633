"""Sampling for learnability: a task's weight is ``p (1 − p)``, ``p`` its success-rate EMA.

Tasks solved always or never weigh 0; a task solved half the time weighs the most (0.25). A task with
fewer than ``min_samples`` outcomes counts as maximally learnable (0.25), so new tasks get tried.
``proportional`` samples in proportion to the weights; ``top_k`` uniformly among the ``top_k`` heaviest
(ties in pool order). ``rand_task_rate`` of the mass is then spread over the whole pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from curriculum_redis.algorithms.base import FloatArray, PoolAlgorithm, mix_uniform
from curriculum_redis.config import PoolConfig

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot

UNKNOWN_WEIGHT = 0.25


class LearnabilityConfig(PoolConfig):
    """Sampling for learnability: ``p (1 - p)`` of each task's success-rate EMA."""

    SAFE: ClassVar[frozenset[str]] = PoolConfig.SAFE | {"sampling", "top_k", "min_samples", "rand_task_rate"}

    algorithm: Literal["learnability"] = "learnability"
    success_ema_alpha: float = Field(0.1, gt=0.0, le=1.0)
    sampling: Literal["proportional", "top_k"] = "proportional"
    top_k: int = Field(16, ge=1)
    min_samples: int = Field(5, ge=1)
    """Below this many outcomes a task counts as maximally learnable (p = 0.5, weight 0.25)."""
    rand_task_rate: float = Field(0.01, ge=0.0, le=1.0)


def learnability_weights(completions: FloatArray, learnability: FloatArray, min_samples: int) -> FloatArray:
    return np.where(np.asarray(completions) < min_samples, UNKNOWN_WEIGHT, learnability)


def learnability_distribution(completions: FloatArray, learnability: FloatArray, cfg: LearnabilityConfig) -> FloatArray:
    n = learnability.size
    if n == 0:
        return np.zeros(0)
    w = learnability_weights(completions, learnability, cfg.min_samples)
    if cfg.sampling == "top_k":
        top = np.argsort(-w, kind="stable")[: min(cfg.top_k, n)]
        probs = np.zeros(n)
        probs[top] = 1.0 / top.size
    else:
        total = float(w.sum())
        probs = w / total if total > 0.0 else np.full(n, 1.0 / n)
    return mix_uniform(np.asarray(probs, dtype=np.float64), cfg.rand_task_rate)


class Learnability(PoolAlgorithm):
    name = "learnability"
    config_class = LearnabilityConfig
    score_field = "learnability"
    state_fields = ("success_ema",)

    def meta_fields(self, cfg: LearnabilityConfig) -> dict[str, str]:
        return {"success_ema_alpha": repr(float(cfg.success_ema_alpha))}

    def update(self, state: dict[str, float], x: float, success: float, cfg: LearnabilityConfig, clock: int) -> float:
        if state["completions"] == 0:
            p = success
        else:
            p = state["success_ema"] + cfg.success_ema_alpha * (success - state["success_ema"])
        state["success_ema"] = p
        state["learnability"] = p * (1.0 - p)
        return state["learnability"]

    def distribution(self, snapshot: ScoreSnapshot, cfg: LearnabilityConfig) -> FloatArray:
        return learnability_distribution(snapshot.column("completions"), snapshot.column("learnability"), cfg)
