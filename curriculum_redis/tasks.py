"""Tasks and task generators: a task's environment config is a pure function of its ``task_id``.

Configs are never stored in Redis. Any process, on any machine, regenerates a task's config from its
id, so generators must be deterministic: they draw from ``numpy.random.default_rng`` seeded with the
task id (never ``hash()`` or global random state), and serialise to JSON so a config file names them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from curriculum_redis.errors import ConfigError
from curriculum_redis.labels import label_hash
from curriculum_redis.store.schema import MAX_TASK_ID


@dataclass(frozen=True, slots=True)
class Task:
    """One concrete task: its id, its label and the environment config to build it with.

    ``env_cfg`` is shared by every draw of the same task: copy it before changing it.
    """

    task_id: int
    label: str
    env_cfg: dict[str, Any] = field(hash=False, compare=True)
    label_hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Computed once: the hot path needs it for every outcome, and SHA-256 is not free.
        object.__setattr__(self, "label_hash", label_hash(self.label))


class Span(BaseModel):
    """A continuous bucket: values are drawn uniformly from ``[lo, hi]`` (integers when both bounds are)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lo: float | int
    hi: float | int

    def __init__(self, lo: float | int, hi: float | int, **data: Any) -> None:
        super().__init__(lo=lo, hi=hi, **data)

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if not self.lo <= self.hi:
            raise ValueError(f"Span needs lo <= hi, got lo={self.lo!r} hi={self.hi!r}")
        return self

    def draw(self, rng: np.random.Generator) -> float | int:
        if isinstance(self.lo, int) and isinstance(self.hi, int):
            return int(rng.integers(self.lo, self.hi + 1))
        return float(rng.uniform(float(self.lo), float(self.hi)))

    def __str__(self) -> str:
        return f"{self.lo}..{self.hi}"


def always_tagged(
    model: BaseModel, tag: str, handler: SerializerFunctionWrapHandler, info: SerializationInfo
) -> Any:
    """``handler(model)`` with the discriminator field ``tag`` put back when a dump left it out.

    ``exclude_defaults``/``exclude_unset`` drop a discriminator that holds its default (every subclass's
    ``kind`` does), and the dump could not be read back as the right class. An explicit ``exclude`` of the
    tag is still honoured. A dump that already carries the tag is returned unchanged (stored JSON keeps its
    key order).
    """
    data = handler(model)
    excluded = info.exclude
    if isinstance(data, dict) and tag not in data and not (excluded is not None and tag in excluded):
        data = {tag: getattr(model, tag), **data}
    return data


class TaskGenerator(BaseModel):
    """Base class of task generators. Subclass it, give ``kind`` a unique literal and implement
    :meth:`generate`; the subclass is then found by its ``kind`` when a config is read from JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    registry: ClassVar[dict[str, type[TaskGenerator]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind_field = cls.model_fields.get("kind")
        default = kind_field.default if kind_field is not None else None
        if isinstance(default, str):
            TaskGenerator.registry[default] = cls

    @model_serializer(mode="wrap")
    def _keep_kind(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        return always_tagged(self, "kind", handler, info)

    def get_task(self, task_id: int) -> Task:
        if not 0 <= task_id <= MAX_TASK_ID:
            raise ConfigError(f"task_id must be in [0, 2**53), got {task_id}")
        return self.generate(task_id)

    def generate(self, task_id: int) -> Task:
        raise NotImplementedError(f"{type(self).__name__} must implement generate(task_id)")

    @classmethod
    def from_data(cls, data: Any) -> TaskGenerator:
        """Build the right subclass from a dict carrying ``kind`` (as read from JSON)."""
        if isinstance(data, TaskGenerator):
            return data
        if not isinstance(data, dict) or "kind" not in data:
            raise ConfigError(f"a task generator must be a TaskGenerator or a dict with 'kind', got {data!r}")
        subclass = TaskGenerator.registry.get(data["kind"])
        if subclass is None:
            known = ", ".join(sorted(TaskGenerator.registry))
            raise ConfigError(
                f"unknown task generator kind {data['kind']!r} (known: {known}); import the module that "
                "defines it before reading the config"
            )
        return subclass.model_validate(data)


def _task_rng(task_id: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([task_id, stream])


class SingleTaskGenerator(TaskGenerator):
    """Every task id maps to the same environment config."""

    kind: Literal["single"] = "single"
    env_cfg: dict[str, Any] = Field(default_factory=dict)
    label: str = "default"

    def __init__(self, env_cfg: Mapping[str, Any] | None = None, label: str = "default", **data: Any) -> None:
        BaseModel.__init__(self, env_cfg=dict(env_cfg or {}), label=label, **data)

    def generate(self, task_id: int) -> Task:
        return Task(task_id, self.label, copy.deepcopy(self.env_cfg))


def _set_path(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    node = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"bucket path {dotted!r}: {part!r} is not a mapping in the base config")
        node = child
    node[parts[-1]] = value


class BucketedTaskGenerator(TaskGenerator):
    """Draws one value per bucket (a list of choices or a :class:`Span`) and writes it at a dot path.

    The label names the chosen bucket of each path, e.g. ``maze:size=8,walls=0.1..0.3``, so per-label
    statistics group tasks by bucket.
    """

    kind: Literal["bucketed"] = "bucketed"
    base: dict[str, Any] = Field(default_factory=dict)
    buckets: dict[str, list[Any] | Span]
    label: str = "bucketed"

    def __init__(
        self,
        base: Mapping[str, Any] | None = None,
        buckets: Mapping[str, Sequence[Any] | Span] | None = None,
        label: str = "bucketed",
        **data: Any,
    ) -> None:
        # pydantic calls __init__ when validating too: a Span arriving as a mapping must stay one.
        choices = {path: v if isinstance(v, Span | Mapping) else list(v) for path, v in (buckets or {}).items()}
        BaseModel.__init__(self, base=dict(base or {}), buckets=choices, label=label, **data)

    @field_validator("buckets")
    @classmethod
    def _non_empty(cls, buckets: dict[str, list[Any] | Span]) -> dict[str, list[Any] | Span]:
        if not buckets:
            raise ValueError("buckets must name at least one dot path")
        for path, choices in buckets.items():
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"bucket path {path!r} is not a dot path")
            if isinstance(choices, list) and not choices:
                raise ValueError(f"bucket {path!r} has no values")
        return buckets

    def generate(self, task_id: int) -> Task:
        rng = _task_rng(task_id)
        cfg = copy.deepcopy(self.base)
        parts = []
        for path, choices in self.buckets.items():
            if isinstance(choices, Span):
                value: Any = choices.draw(rng)
                parts.append(f"{path}={choices}")
            else:
                value = choices[int(rng.integers(len(choices)))]
                parts.append(f"{path}={value}")
            _set_path(cfg, path, value)
        return Task(task_id, f"{self.label}:{','.join(parts)}", cfg)


class TaskGeneratorSet(TaskGenerator):
    """Picks one of several generators by weight (from the task id), then lets it generate the task."""

    kind: Literal["set"] = "set"
    generators: list[SerializeAsAny[TaskGenerator]]
    weights: list[float] | None = None

    def __init__(
        self,
        generators: Sequence[TaskGenerator] | None = None,
        weights: Sequence[float] | None = None,
        **data: Any,
    ) -> None:
        BaseModel.__init__(
            self, generators=list(generators or []), weights=None if weights is None else list(weights), **data
        )

    @field_validator("generators", mode="before")
    @classmethod
    def _build_children(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("generators must be a non-empty list")
        return [TaskGenerator.from_data(item) for item in value]

    @model_validator(mode="after")
    def _check_weights(self) -> TaskGeneratorSet:
        if self.weights is not None:
            if len(self.weights) != len(self.generators):
                raise ValueError(
                    f"weights has {len(self.weights)} entries for {len(self.generators)} generators"
                )
            if any(not np.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"weights must be finite, >= 0 and not all zero, got {self.weights}")
        return self

    def generate(self, task_id: int) -> Task:
        weights = np.asarray(self.weights if self.weights is not None else [1.0] * len(self.generators))
        cdf = np.cumsum(weights / weights.sum())
        pick = int(np.searchsorted(cdf, _task_rng(task_id, 1).random(), side="right"))
        return self.generators[min(pick, len(self.generators) - 1)].generate(task_id)
