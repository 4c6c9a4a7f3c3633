"""Uniform sampling (domain randomisation): the baseline every other algorithm should beat."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from curriculum_redis.algorithms.base import Algorithm, FloatArray, IndexArray
from curriculum_redis.config import AnyAlgorithmConfig

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot


class Uniform(Algorithm):
    name = "uniform"
    score_field = "score"
    state_fields = ()

    def meta_fields(self, cfg: AnyAlgorithmConfig) -> dict[str, str]:
        return {}

    def update(self, state: dict[str, float], x: float, success: float, cfg: AnyAlgorithmConfig, clock: int) -> float:
        state["score"] = 0.0
        return 0.0

    def distribution(self, snapshot: ScoreSnapshot, cfg: AnyAlgorithmConfig) -> FloatArray:
        n = snapshot.size
        return np.full(n, 1.0 / n) if n else np.zeros(0)

    def eviction_candidates(
        self, snapshot: ScoreSnapshot, cfg: AnyAlgorithmConfig, limit: int
    ) -> tuple[IndexArray, FloatArray]:
        """Nothing is evicted for its score (every score is 0); failing tasks still are, by the curriculum."""
        return np.zeros(0, dtype=np.intp), np.zeros(0)
