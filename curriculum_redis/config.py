"""Validated configuration: the learning-progress hyperparameters and the curriculum around them.

Field names and defaults follow the system this replaces, so its users feel at home. Every config
refuses unknown fields and round-trips through JSON (task generators included).
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from curriculum_redis.errors import ConfigError, HyperparameterMismatchError
from curriculum_redis.stage_config import StageCurriculumConfig
from curriculum_redis.tasks import TaskGenerator, always_tagged

ModelT = TypeVar("ModelT", bound=BaseModel)
AlgorithmConfigT = TypeVar("AlgorithmConfigT", bound="AlgorithmConfig")

log = logging.getLogger(__name__)

MismatchPolicy = Literal["error", "allow_safe", "adopt"]
"""What to do when a namespace already holds other hyperparameters: refuse, accept differences in
sampling-only fields (the config class's ``SAFE``), or use the stored hyperparameters."""


def check_score_range(value: tuple[float, float]) -> tuple[float, float]:
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"score_range must be two finite numbers with lo < hi, got {value}")
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

    @model_serializer(mode="wrap")
    def _keep_algorithm(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        return always_tagged(self, "algorithm", handler, info)

    def differences(self, other: Self) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ, as ``{field: (self's value, other's value)}``; a field only one side
        has counts as ``None`` on the other."""
        mine, theirs = self.model_dump(), other.model_dump()
        names = list(dict.fromkeys([*mine, *theirs]))
        return {n: (mine.get(n), theirs.get(n)) for n in names if mine.get(n) != theirs.get(n)}



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
        """A named preset (``default``, ``stable``, ``fast_learning``) with fields overridden."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
        return build(cls, {**PRESETS[name], **overrides})


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


SAFE_TO_CHANGE: frozenset[str] = LearningProgressConfig.SAFE
"""Alias of ``LearningProgressConfig.SAFE`` until its users read ``type(cfg).SAFE``."""

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
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


class PrioritizedReplayConfig(PoolConfig):
    """Prioritized level replay (Jiang et al., ICML 2021): rank-prioritised scores mixed with staleness."""

    SAFE: ClassVar[frozenset[str]] = PoolConfig.SAFE | {
        "temperature", "staleness_coef", "replay_schedule", "replay_probability",
    }

    algorithm: Literal["prioritized_replay"] = "prioritized_replay"
    score_update: Literal["replace", "ema"] = "replace"
    """How a task's score takes a new reported value: replaced by it, or averaged with ``score_ema_alpha``."""
    score_ema_alpha: float = Field(0.1, gt=0.0, le=1.0)
    temperature: float = Field(0.1, gt=0.0)
    """beta: ``P_S ∝ (1/rank)^(1/beta)``."""
    staleness_coef: float = Field(0.1, ge=0.0, le=1.0)
    """rho: ``P = (1 - rho) P_S + rho P_C``."""
    replay_schedule: Literal["proportionate", "fixed"] = "proportionate"
    replay_probability: float = Field(0.5, ge=0.0, le=1.0)
    """The ``fixed`` schedule's probability of replaying a seen task (``proportionate``: seen / total)."""
    tracker_ema_alpha: float = Field(0.02, gt=0.0, le=1.0)


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


class UniformConfig(PoolConfig):
    """Domain randomisation: every active task equally likely (the trivial baseline)."""

    algorithm: Literal["uniform"] = "uniform"
    max_evictions_per_refresh: int = Field(0, ge=0)


class SequentialConfig(StageCurriculumConfig, AlgorithmConfig):
    """Ordered stages, each left when its stop condition (or threshold rule) holds: the stage curriculum
    chosen by ``CurriculumConfig.algorithm``. Its state is per stage, not per task, so it runs on the
    stage engine (:mod:`curriculum_redis.stage`, ``lua/stage_record.lua``) rather than the task pool."""

    algorithm: Literal["sequential"] = "sequential"


PoolAlgorithmConfig: TypeAlias = Annotated[
    LearningProgressConfig | PrioritizedReplayConfig | LearnabilityConfig | UniformConfig,
    Field(discriminator="algorithm"),
]
"""Any algorithm's config; the ``algorithm`` field names which (``learning_progress`` when omitted)."""

AnyAlgorithmConfig: TypeAlias = LearningProgressConfig | PrioritizedReplayConfig | LearnabilityConfig | UniformConfig

ALGORITHM_ADAPTER: TypeAdapter[AnyAlgorithmConfig] = TypeAdapter(PoolAlgorithmConfig)

CurriculumAlgorithmConfig: TypeAlias = Annotated[
    LearningProgressConfig | PrioritizedReplayConfig | LearnabilityConfig | UniformConfig | SequentialConfig,
    Field(discriminator="algorithm"),
]
"""What ``CurriculumConfig.algorithm`` accepts: a task-pool algorithm, or ``sequential`` stages."""


def parse_algorithm_json(raw: str | bytes) -> AnyAlgorithmConfig:
    """An algorithm config from its JSON (as stored in a namespace's meta)."""
    return ALGORITHM_ADAPTER.validate_json(raw)


def safe_to_change(cfg: BaseModel) -> frozenset[str]:
    """Alias of ``type(cfg).SAFE`` until its users read that."""
    return frozenset(getattr(cfg, "SAFE", frozenset()))


class BufferConfig(BaseModel):
    """How outcomes are batched before one script call writes them, and how many may wait offline."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    batch_size: int = Field(64, ge=1, le=100_000)
    max_age_s: float = Field(1.0, ge=0.0)
    max_pending_outcomes: int = Field(1_000_000, ge=1)


class SamplerConfig(BaseModel):
    """When a process refreshes its local score snapshot from the store."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    refresh_every_draws: int = Field(1000, ge=1)
    refresh_every_s: float = Field(1.0, gt=0.0)


class CurriculumConfig(BaseModel):
    """Everything a worker needs to join a curriculum: it pickles and serialises, sockets never do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_generator: SerializeAsAny[TaskGenerator] | None = None
    """Required by every algorithm but ``sequential``, whose stages name their own tasks."""
    algorithm: CurriculumAlgorithmConfig = Field(default_factory=LearningProgressConfig)
    seed: int = 0
    redis_url: str | None = None
    namespace: str = Field("default", min_length=1, max_length=128)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    on_mismatch: MismatchPolicy = "error"
    ttl_s: float | None = Field(None, gt=0.0)
    """Keys of the namespace expire this long after the last live writer refreshed them (None: never)."""

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
    def _default_algorithm(cls, value: Any) -> Any:
        # A config file may omit the name: learning progress, as before algorithms could be chosen.
        if isinstance(value, dict) and "algorithm" not in value:
            return {**value, "algorithm": "learning_progress"}  # algorithms.DEFAULT_ALGORITHM
        return value

    @field_validator("namespace")
    @classmethod
    def _readable_namespace(cls, value: str) -> str:
        bad = set(value) & set("{}: \t\r\n*?[]")
        if bad:
            raise ValueError(
                f"namespace {value!r} contains {''.join(sorted(bad))!r}; use letters, digits, '-', '_', '.'"
            )
        return value

    @model_validator(mode="after")
    def _generator_given(self) -> CurriculumConfig:
        if self.task_generator is None and not isinstance(self.algorithm, SequentialConfig):
            raise ValueError(f"task_generator is required by the {self.algorithm.algorithm} algorithm")
        return self

    @model_validator(mode="after")
    def _url_scheme(self) -> CurriculumConfig:
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
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
