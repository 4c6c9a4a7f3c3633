"""Uniform sampling (domain randomisation): the baseline every other algorithm should beat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from curriculum_redis.algorithms.base import FloatArray, IndexArray, PoolAlgorithm
from curriculum_redis.config import PoolConfig

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot


class UniformConfig(PoolConfig):
    """Domain randomisation: every active task equally likely (the trivial baseline)."""

    algorithm: Literal["uniform"] = "uniform"
    max_evictions_per_refresh: int = Field(0, ge=0)


class Uniform(PoolAlgorithm):
    name = "uniform"
    config_class = UniformConfig
    score_field = "score"
    state_fields = ()

    def meta_fields(self, cfg: UniformConfig) -> dict[str, str]:
        return {}

    def update(self, state: dict[str, float], x: float, success: float, cfg: UniformConfig, clock: int) -> float:
        state["score"] = 0.0
        return 0.0

    def distribution(self, snapshot: ScoreSnapshot, cfg: UniformConfig) -> FloatArray:
        n = snapshot.size
        return np.full(n, 1.0 / n) if n else np.zeros(0)

    def eviction_candidates(
        self, snapshot: ScoreSnapshot, cfg: UniformConfig, limit: int
    ) -> tuple[IndexArray, FloatArray]:
        """Nothing is evicted for its score (every score is 0); failing tasks still are, by the curriculum."""
        return np.zeros(0, dtype=np.intp), np.zeros(0)
