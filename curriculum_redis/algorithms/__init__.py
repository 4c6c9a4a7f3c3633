"""Curriculum algorithms over the shared store, chosen by ``CurriculumConfig.algorithm``."""

from __future__ import annotations

from curriculum_redis.algorithms.base import GENERIC_FIELDS, RECORD_FIELDS, RECORD_SIZE, Algorithm
from curriculum_redis.algorithms.learnability import Learnability
from curriculum_redis.algorithms.learning_progress import LearningProgress
from curriculum_redis.algorithms.prioritized_replay import PrioritizedReplay
from curriculum_redis.algorithms.uniform import Uniform
from curriculum_redis.config import AnyAlgorithmConfig
from curriculum_redis.errors import ConfigError

DEFAULT_ALGORITHM = "learning_progress"
"""The algorithm of a config that names none (and of namespaces written before algorithms could be chosen)."""

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a for a in (LearningProgress(), PrioritizedReplay(), Learnability(), Uniform())
}


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(ALGORITHMS))}") from None


def algorithm_of(cfg: AnyAlgorithmConfig) -> Algorithm:
    return get_algorithm(cfg.algorithm)


__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "GENERIC_FIELDS",
    "RECORD_FIELDS",
    "RECORD_SIZE",
    "Algorithm",
    "algorithm_of",
    "get_algorithm",
]
