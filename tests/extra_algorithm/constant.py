"""The constant algorithm: a test's proof that an algorithm is one config class, one module and one Lua file.

Each task's score is its last normalised outcome; ``shifted`` keeps the score plus ``value``, so the
Lua update reads a hyperparameter from meta. Sampling weighs each task ``value + score``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from curriculum_redis.algorithms.base import FloatArray, PoolAlgorithm
from curriculum_redis.config import PoolConfig

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot


class ConstantConfig(PoolConfig):
    """The constant algorithm's one setting, beside the pool's."""

    SAFE: ClassVar[frozenset[str]] = PoolConfig.SAFE

    algorithm: Literal["constant"] = "constant"
    value: float = Field(0.5, gt=0.0)


class Constant(PoolAlgorithm):
    name = "constant"
    config_class = ConstantConfig
    score_field = "last_outcome"
    state_fields = ("shifted",)

    @classmethod
    def lua_path(cls) -> Path:
        return Path(__file__).with_name("algorithm_constant.lua")

    def meta_fields(self, cfg: ConstantConfig) -> dict[str, str]:
        return {"value": repr(float(cfg.value))}

    def update(self, state: dict[str, float], x: float, success: float, cfg: ConstantConfig, clock: int) -> float:
        state["last_outcome"] = x
        state["shifted"] = x + cfg.value
        return x

    def distribution(self, snapshot: ScoreSnapshot, cfg: ConstantConfig) -> FloatArray:
        weights = cfg.value + snapshot.column("last_outcome")
        return np.asarray(weights / weights.sum(), dtype=np.float64) if weights.size else np.zeros(0)
