"""Curriculum algorithms, chosen by ``CurriculumConfig.algorithm``: one module each, found by discovery.

:func:`registry` imports every module of this package, and every ``curriculum_redis.algorithms`` entry
point of installed distributions, once; each :class:`~curriculum_redis.algorithms.base.Algorithm`
subclass registers itself by ``name`` as its module is imported.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from curriculum_redis.algorithms.base import Algorithm, PoolAlgorithm, registered
from curriculum_redis.config import AlgorithmConfig, config_class, parse_config
from curriculum_redis.errors import ConfigError

if TYPE_CHECKING:
    ALGORITHMS: dict[str, PoolAlgorithm]
    """The pool algorithms by name (:func:`pool_algorithms`, read when first asked for)."""

DEFAULT_ALGORITHM = "frontier"
"""The algorithm of a config that names none: the one that won the quality suite (README, "Curriculum
quality")."""

STORED_DEFAULT_ALGORITHM = "learning_progress"
"""The algorithm of a namespace whose meta names none: those were written before meta named it."""

ENTRY_POINT_GROUP = "curriculum_redis.algorithms"
"""Entry-point group under which another distribution publishes the modules of its algorithms."""


@functools.cache
def discover() -> None:
    """Import the package's algorithm modules and the entry points' (once per process)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()


def registry() -> dict[str, Algorithm]:
    """Every known algorithm by name: the package's, the entry points', and any defined since."""
    discover()
    return registered()


def find_algorithm(name: str) -> Algorithm:
    """The algorithm called ``name``, whatever the shape of its state."""
    algorithms = registry()
    if name not in algorithms:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(algorithms))}")
    return algorithms[name]


def pool_algorithms() -> dict[str, PoolAlgorithm]:
    """The algorithms that keep a task pool, by name."""
    return {name: a for name, a in registry().items() if isinstance(a, PoolAlgorithm)}


def get_algorithm(name: str) -> PoolAlgorithm:
    """The pool algorithm called ``name``."""
    algorithm = find_algorithm(name)
    if not isinstance(algorithm, PoolAlgorithm):
        raise ConfigError(f"the {name} algorithm keeps no task pool")
    return algorithm


def algorithm_of(cfg: AlgorithmConfig) -> PoolAlgorithm:
    """The pool algorithm ``cfg`` configures."""
    return get_algorithm(cfg.algorithm)


def __getattr__(name: str) -> Any:
    # A registry read at import time would import every algorithm module while this package is half made.
    if name == "ALGORITHMS":
        return pool_algorithms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "ENTRY_POINT_GROUP",
    "STORED_DEFAULT_ALGORITHM",
    "Algorithm",
    "PoolAlgorithm",
    "algorithm_of",
    "config_class",
    "discover",
    "find_algorithm",
    "get_algorithm",
    "parse_config",
    "pool_algorithms",
    "registry",
]
