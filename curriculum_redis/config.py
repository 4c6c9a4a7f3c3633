"""Validated configuration: the base of every algorithm's config, and the curriculum around it.

Each algorithm's own config class lives in its module under :mod:`curriculum_redis.algorithms` and
registers its ``algorithm`` name when defined; :func:`parse_config` finds it by that name. Field names
and defaults follow the system this replaces, so its users feel at home. Every config refuses unknown
fields and round-trips through JSON (task generators included).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self, TypeVar

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from curriculum_redis.errors import ConfigError, HyperparameterMismatchError, InvalidScoreError
from curriculum_redis.store.url import check_url
from curriculum_redis.tasks import TaskGenerator, always_tagged

ModelT = TypeVar("ModelT", bound=BaseModel)
AlgorithmConfigT = TypeVar("AlgorithmConfigT", bound="AlgorithmConfig")

log = logging.getLogger(__name__)

MismatchPolicy = Literal["error", "allow_safe", "adopt"]
"""What to do when a namespace already holds other hyperparameters: refuse, accept differences in
sampling-only fields (the config class's ``SAFE``), or use the stored hyperparameters."""


def check_score_range(value: tuple[float, float]) -> tuple[float, float]:
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and math.isfinite(hi - lo)):
        raise ValueError(f"score_range must be two finite numbers with lo < hi and a finite hi - lo, got {value}")
    return value


class AlgorithmConfig(BaseModel):
    """Base of every algorithm's config: frozen, refuses unknown fields, and always names its ``algorithm``.

    Every dump carries ``algorithm``, even with ``exclude_defaults``, so a dump of a
    :class:`CurriculumConfig` reads back as the same algorithm (an untagged one would be read as learning
    progress). Subclasses declare ``algorithm`` as a literal and list in ``SAFE`` the fields that
    ``on_mismatch="allow_safe"`` lets differ from a namespace's stored config."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    SAFE: ClassVar[frozenset[str]] = frozenset()
    """Fields that only shape how each process samples or picks eviction candidates: changing them never
    changes the meaning of a stored number. Every other field must match the namespace."""

    algorithm: str

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        tag = cls.model_fields["algorithm"].default
        if "algorithm" in inspect.get_annotations(cls) and isinstance(tag, str):
            known = _CONFIG_CLASSES.setdefault(tag, cls)
            if _qualified(known) != _qualified(cls):
                raise ConfigError(f"two configs name the algorithm {tag!r}: {_qualified(known)} and {_qualified(cls)}")
            _CONFIG_CLASSES[tag] = cls

    @model_serializer(mode="wrap")
    def _keep_algorithm(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        return always_tagged(self, "algorithm", handler, info)

    def differences(self, other: Self) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ, as ``{field: (self's value, other's value)}``; a field only one side
        has counts as ``None`` on the other."""
        mine, theirs = self.model_dump(), other.model_dump()
        names = list(dict.fromkeys([*mine, *theirs]))
        return {n: (mine.get(n), theirs.get(n)) for n in names if mine.get(n) != theirs.get(n)}

    def refresh_every_draws(self) -> int:
        """How often a process should refresh its snapshot when ``SamplerConfig`` leaves it to the algorithm:
        a distribution that changes slowly needs few refreshes (each one reads the whole pool)."""
        return 1000


_CONFIG_CLASSES: dict[str, type[AlgorithmConfig]] = {}
"""Algorithm name -> config class: every subclass of :class:`AlgorithmConfig` that declares its own
``algorithm`` literal registers itself when defined."""


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def parse_config(value: object) -> AlgorithmConfig:
    """An algorithm's config from a config, a mapping or JSON, found by its ``algorithm`` field
    (:data:`curriculum_redis.algorithms.DEFAULT_ALGORITHM` when a mapping names none)."""
    if isinstance(value, AlgorithmConfig):
        return value
    if isinstance(value, str | bytes | bytearray):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"an algorithm config must be a JSON object: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ConfigError(f"an algorithm config must be a mapping, not {type(value).__name__}")
    return config_class(value.get("algorithm", DEFAULT)).model_validate(value)


DEFAULT = object()
"""Stands for the default algorithm, which the algorithms package names."""


def config_class(name: object = DEFAULT) -> type[AlgorithmConfig]:
    """The config class of the algorithm called ``name`` (of the default algorithm without one)."""
    from curriculum_redis.algorithms import DEFAULT_ALGORITHM, discover  # the algorithms import this module

    discover()
    if name is DEFAULT:
        name = DEFAULT_ALGORITHM
    if not isinstance(name, str) or name not in _CONFIG_CLASSES:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {', '.join(sorted(_CONFIG_CLASSES))}")
    return _CONFIG_CLASSES[name]


def normalize_score(raw: float, score_range: tuple[float, float]) -> float:
    """Map a raw score onto [0, 1] with the configured range, clipping; refuse NaN, inf and non-numbers."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | np.floating | np.integer):
        raise InvalidScoreError(f"score must be a real number, got {type(raw).__name__} {raw!r}")
    try:
        value = float(raw)
    except OverflowError:  # an int beyond a double, e.g. 10**400
        raise InvalidScoreError(f"score must be finite, got an int of {int(raw).bit_length()} bits") from None
    if not math.isfinite(value):
        raise InvalidScoreError(f"score must be finite, got {value!r}")
    lo, hi = score_range
    return min(1.0, max(0.0, (value - lo) / (hi - lo)))


class PoolConfig(AlgorithmConfig):
    """Settings of the task pool, shared by every algorithm that samples from one (see README, "Algorithms")."""

    SAFE: ClassVar[frozenset[str]] = frozenset(
        {
            "eviction_threshold_percentile",
            "min_presentations_for_eviction",
            "max_evictions_per_refresh",
            "max_consecutive_failures",
        }
    )

    num_active_tasks: int = Field(256, ge=1, le=1_000_000)
    eviction_threshold_percentile: float = Field(0.4, ge=0.0, le=1.0)
    min_presentations_for_eviction: int = Field(5, ge=1)
    max_evictions_per_refresh: int = Field(4, ge=0)
    max_consecutive_failures: int = Field(3, ge=1)
    success_threshold: float = Field(0.5, ge=0.0, le=1.0)
    score_range: tuple[float, float] = (0.0, 1.0)

    @field_validator("score_range")
    @classmethod
    def _valid_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        return check_score_range(value)

    def normalize(self, raw: float) -> float:
        """A reported score on [0, 1] (see :func:`normalize_score`)."""
        return normalize_score(raw, self.score_range)


def reconcile_hypers(
    stored: AlgorithmConfigT, given: AlgorithmConfigT, policy: MismatchPolicy, where: str
) -> AlgorithmConfigT:
    """The hyperparameters to run with, or an error naming every field that may not differ.

    Another algorithm is refused whatever the policy: the stored numbers would mean something else."""
    if stored.algorithm != given.algorithm:
        raise HyperparameterMismatchError({"algorithm": (stored.algorithm, given.algorithm)}, where)
    diffs = stored.differences(given)
    if not diffs:
        return given
    if policy == "adopt":
        log.info("%s: adopting stored hyperparameters (differing: %s)", where, ", ".join(diffs))
        return stored
    unsafe = {name: diff for name, diff in diffs.items() if name not in type(given).SAFE}
    if policy == "allow_safe" and not unsafe:
        return given
    raise HyperparameterMismatchError(diffs if policy == "error" else unsafe, where)


def parse_algorithm_json(raw: str | bytes) -> PoolConfig:
    """A pool algorithm's config from its JSON (as stored in a namespace's meta)."""
    cfg = parse_config(raw)
    if not isinstance(cfg, PoolConfig):
        raise ConfigError(f"the {cfg.algorithm} algorithm keeps no task pool")
    return cfg


class BufferConfig(BaseModel):
    """How outcomes are batched before one script call writes them, and how many may wait offline."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    batch_size: int = Field(64, ge=1, le=100_000)
    max_age_s: float = Field(1.0, ge=0.0)
    max_pending_outcomes: int = Field(1_000_000, ge=1)


class SamplerConfig(BaseModel):
    """When a process refreshes its local score snapshot from the store."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    refresh_every_draws: int | None = Field(None, ge=1)
    """Refresh after this many draws; ``None``: as the algorithm recommends (``AlgorithmConfig.refresh_every_draws``:
    1000 for most, every ~10 draws for ``frontier``, which steers episode by episode)."""
    refresh_every_s: float | None = Field(1.0, gt=0.0)
    """Also refresh when the snapshot is this old. ``None``: by draw count only, and the process that makes the
    ``Curriculum`` draws from ``seed`` alone, so a seeded run repeats (give each worker process its own seed)."""
    first_refresh_after_draws: int = Field(8, ge=1)
    """The first refresh after attaching comes after this many draws, each next gap twice the last up to
    ``refresh_every_draws``: the algorithm steers from the first episodes."""


class CurriculumConfig(BaseModel):
    """Everything a worker needs to join a curriculum: it pickles and serialises, sockets never do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_generator: SerializeAsAny[TaskGenerator] | None = None
    """Required by every algorithm but ``sequential``, whose stages name their own tasks."""
    algorithm: SerializeAsAny[AlgorithmConfig] = Field(default_factory=lambda: parse_config({}))
    """Any registered algorithm's config; the ``algorithm`` field names which (learning progress when
    a mapping names none)."""
    seed: int = 0
    redis_url: str | None = None
    namespace: str = Field("default", min_length=1, max_length=128)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    on_mismatch: MismatchPolicy = "error"
    ttl_s: float | None = Field(None, gt=0.0)
    """Keys of the namespace expire this long after the last live writer refreshed them (None: never)."""
    on_evicting_server: Literal["error", "warn"] = "error"
    """What attaching does when the server's ``maxmemory-policy`` may evict the namespace's keys (``allkeys-*``,
    or ``volatile-*`` with ``ttl_s``): refuse (an EvictionPolicyError), or log a warning and go on."""

    @field_validator("task_generator", mode="before")
    @classmethod
    def _build_generator(cls, value: Any) -> TaskGenerator | None:
        return None if value is None else TaskGenerator.from_data(value)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> CurriculumConfig:
        """The config in a ``.json``, ``.yaml`` or ``.yml`` file, with top-level fields replaced by
        ``overrides`` (e.g. ``redis_url=...`` from the command line). YAML needs PyYAML (the ``yaml``
        extra). Every problem, from a missing file to an unknown field, is a :class:`ConfigError` naming
        the file. Examples for every algorithm: ``examples/configs/``."""
        data = read_config_file(path)
        try:
            return cls.model_validate({**data, **overrides})
        except (ValidationError, ConfigError) as exc:
            raise ConfigError(f"invalid config file {os.fspath(path)}: {exc}") from exc

    @property
    def generator(self) -> TaskGenerator:
        """The task generator (every algorithm but ``sequential`` has one)."""
        if self.task_generator is None:
            raise ConfigError(f"the {self.algorithm.algorithm} algorithm needs a task_generator")
        return self.task_generator

    @field_validator("algorithm", mode="before")
    @classmethod
    def _registered_algorithm(cls, value: Any) -> AlgorithmConfig:
        return parse_config(value)

    @field_validator("namespace")
    @classmethod
    def _readable_namespace(cls, value: str) -> str:
        from curriculum_redis.store.keys import validate_namespace  # the one check of every entry point

        return validate_namespace(value)

    @model_validator(mode="after")
    def _generator_given(self) -> CurriculumConfig:
        if self.task_generator is None and isinstance(self.algorithm, PoolConfig):
            raise ValueError(f"task_generator is required by the {self.algorithm.algorithm} algorithm")
        return self

    @model_validator(mode="after")
    def _nearness_affordable(self) -> CurriculumConfig:
        """Frontier computes nearness exactly at every refresh: placed tasks need a pool it can afford."""
        from curriculum_redis.algorithms.frontier import NEIGHBOUR_POOL_LIMIT, FrontierConfig  # imports this module

        algorithm, generator = self.algorithm, self.task_generator
        if not isinstance(algorithm, FrontierConfig) or algorithm.num_active_tasks <= NEIGHBOUR_POOL_LIMIT:
            return self
        if generator is not None and generator.get_task(1 if generator.size else 0).position is not None:
            raise ValueError(
                f"tasks with coordinates need num_active_tasks <= {NEIGHBOUR_POOL_LIMIT} under the frontier "
                f"algorithm (nearness is computed exactly at every refresh), got {algorithm.num_active_tasks}"
            )
        return self

    @model_validator(mode="after")
    def _url_scheme(self) -> CurriculumConfig:
        if self.redis_url is not None:
            check_url(self.redis_url, "redis_url")
        return self


CONFIG_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping a JSON or YAML config file holds (not yet validated)."""
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in CONFIG_FILE_SUFFIXES:
        raise ConfigError(f"config file {name}: unknown suffix {suffix!r}; use {', '.join(CONFIG_FILE_SUFFIXES)}")
    try:
        with open(name, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}") from exc
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {name} is not valid JSON: {exc}") from exc
    else:
        data = _load_yaml(name, text)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {name} must hold a mapping of fields, not {type(data).__name__}")
    return data


def _load_yaml(name: str, text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped, unused-ignore]  # types-PyYAML is optional
    except ImportError as exc:
        raise ConfigError(
            f"reading the YAML config file {name} needs PyYAML: pip install 'curriculum_redis[yaml]' "
            "(or give the config as .json)"
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {name} is not valid YAML: {exc}") from exc


def build(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Validate ``data`` into ``model``, turning pydantic's error into a :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid {model.__name__}: {exc}") from exc
