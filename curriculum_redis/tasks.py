"""Tasks and task generators: a task's environment config is a pure function of its ``task_id``.

Configs are never stored in Redis. Any process, on any machine, regenerates a task's config from its
id, so generators must be deterministic: they draw from ``numpy.random.default_rng`` seeded with the
task id (never ``hash()`` or global random state), and serialise to JSON so a config file names them.

A *finite* generator (``size`` is not ``None``) enumerates its configurations instead: task id ``k`` in
``1..size`` is the ``k``-th one, so each configuration has exactly one id and the pool holds it at most once.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

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
    position: tuple[float, ...] | None = field(default=None, compare=False)
    """Where the task lies in task space (its generator's ``coordinates``), or ``None``."""
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


def always_tagged(model: BaseModel, tag: str, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
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


def is_dot_path(path: str) -> bool:
    """``a.b.c``: bucket paths and coordinates name places in a nested ``env_cfg`` this way."""
    return bool(path) and all(path.split("."))


def without_defaults(model: BaseModel, data: Any, names: Sequence[str]) -> Any:
    """A dump without the options ``names`` that hold their defaults: a generator that sets none of them
    dumps as it did before they existed (stored configs compare equal)."""
    if isinstance(data, dict):
        for name in names:
            default = type(model).model_fields[name].default
            if name in data and data[name] in (default, list(default) if isinstance(default, tuple) else default):
                del data[name]
    return data


class TaskGenerator(BaseModel):
    """Base class of task generators. Subclass it, give ``kind`` a unique literal and implement
    :meth:`generate`; the subclass is then found by its ``kind`` when a config is read from JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    coordinates: tuple[str, ...] = ()
    """Dot paths of ``env_cfg`` whose values (a number, or a list of numbers) place each task in task space:
    ``("start.row", "start.col")``, ``("size",)``. The default algorithm then trains the never-solved tasks
    next to solved ones first (README, "The algorithm", step 4). Empty: tasks have no geometry."""
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
        return without_defaults(self, always_tagged(self, "kind", handler, info), ("coordinates",))

    @field_validator("coordinates")
    @classmethod
    def _dot_paths(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for key in keys:
            if not is_dot_path(key):
                raise ValueError(f"coordinate {key!r} is not a dot path")
        if len(set(keys)) != len(keys):
            raise ValueError(f"coordinates repeat a path: {list(keys)}")
        return keys

    @model_validator(mode="after")
    def _coordinates_resolve(self) -> Self:
        """Coordinates that name nothing in the tasks fail here, not at a training run's first refresh."""
        if self.coordinates:
            try:
                task = self.generate(1 if self.size is not None else 0)
            except Exception:  # the generator's own checks say what is wrong with it
                return self
            task_position(task, self.coordinates)
        return self

    @property
    def size(self) -> int | None:
        """How many configurations the generator enumerates (ids ``1..size``); ``None`` when infinite."""
        return None

    def locate(self, task: Task) -> Task:
        """``task`` with its position read from this generator's ``coordinates`` (unchanged without them)."""
        if not self.coordinates:
            return task
        return dataclasses.replace(task, position=task_position(task, self.coordinates))

    def task_ids(self) -> range:
        """Every task id of a finite generator, one per configuration."""
        if self.size is None:
            raise ConfigError(f"{type(self).__name__} is not finite: it has no list of task ids")
        return range(1, self.size + 1)

    def get_task(self, task_id: int) -> Task:
        size = self.size
        if size is not None and not 1 <= task_id <= size:
            raise ConfigError(f"this finite generator's task ids are 1..{size}, got {task_id}")
        if not 0 <= task_id <= MAX_TASK_ID:
            raise ConfigError(f"task_id must be in [0, 2**53), got {task_id}")
        return self.locate(self.generate(task_id))

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
    """Every task id maps to the same environment config. With ``finite=True`` it is one configuration
    (task id 1), so a finite ``TaskGeneratorSet`` of them lists hand-picked configs, each with its own label."""

    kind: Literal["single"] = "single"
    env_cfg: dict[str, Any] = Field(default_factory=dict)
    label: str = "default"
    finite: bool = False

    def __init__(self, env_cfg: Mapping[str, Any] | None = None, label: str = "default", **data: Any) -> None:
        BaseModel.__init__(self, env_cfg=dict(env_cfg or {}), label=label, **data)

    @property
    def size(self) -> int | None:
        return 1 if self.finite else None

    @model_serializer(mode="wrap")
    def _keep_kind(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # Left at their defaults, options are not written: the generator dumps as it did before they existed.
        return without_defaults(self, always_tagged(self, "kind", handler, info), ("finite", "coordinates"))

    def generate(self, task_id: int) -> Task:
        return Task(task_id, self.label, copy.deepcopy(self.env_cfg))


def task_position(task: Task, keys: Sequence[str]) -> tuple[float, ...]:
    """The task's coordinates: the values at the dot paths ``keys`` of its ``env_cfg``, each a finite number
    or a list of them (``[row, col]``), in order. Used to find the never-solved tasks next to solved ones."""
    coords: list[float] = []
    for dotted in keys:
        node: Any = task.env_cfg
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(f"coordinate {dotted!r} is not in task {task.task_id}'s env_cfg {task.env_cfg!r}")
            node = node[part]
        values = list(node) if isinstance(node, list | tuple) else [node]
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise ConfigError(
                    f"coordinate {dotted!r} of task {task.task_id} must hold a number or a list of numbers, "
                    f"got {node!r}"
                )
            if not math.isfinite(float(value)):
                raise ConfigError(f"coordinate {dotted!r} of task {task.task_id} is not finite: {node!r}")
            coords.append(float(value))
    return tuple(coords)


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
    """Writes one value per bucket (a list of choices or a :class:`Span`) at a dot path.

    By default each task id draws its values at random (an infinite generator). With ``finite=True`` the
    ids enumerate every combination of the buckets (lists, or :class:`Span` of integers), one id each.

    The label names the chosen bucket of each path, e.g. ``maze:size=8,walls=0.1..0.3``, so per-label
    statistics group tasks by bucket. ``label_keys`` keeps only those paths in it; ``label_format`` replaces
    it with a format string over the chosen values, each named by its path with dots as underscores
    (``"dist={start[dist]}"`` when the ``start`` values are dicts holding a ``dist``): many configurations
    can then share one label, whose statistics they pool.
    """

    kind: Literal["bucketed"] = "bucketed"
    base: dict[str, Any] = Field(default_factory=dict)
    buckets: dict[str, list[Any] | Span]
    label: str = "bucketed"
    finite: bool = False
    label_keys: list[str] | None = None
    label_format: str | None = None

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

    @model_serializer(mode="wrap")
    def _keep_kind(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # Options left at their defaults are not written: a generator dumps as it did before they existed.
        data = always_tagged(self, "kind", handler, info)
        return without_defaults(self, data, ("finite", "label_keys", "label_format", "coordinates"))

    @field_validator("buckets")
    @classmethod
    def _non_empty(cls, buckets: dict[str, list[Any] | Span]) -> dict[str, list[Any] | Span]:
        if not buckets:
            raise ValueError("buckets must name at least one dot path")
        for path, choices in buckets.items():
            if not is_dot_path(path):
                raise ValueError(f"bucket path {path!r} is not a dot path")
            if isinstance(choices, list) and not choices:
                raise ValueError(f"bucket {path!r} has no values")
        return buckets

    @model_validator(mode="after")
    def _check_options(self) -> BucketedTaskGenerator:
        unknown = sorted(set(self.label_keys or ()) - set(self.buckets))
        if unknown:
            raise ValueError(f"label_keys names no bucket: {unknown} (buckets: {sorted(self.buckets)})")
        if self.finite:
            for path, choices in self.buckets.items():
                if isinstance(choices, Span) and not (isinstance(choices.lo, int) and isinstance(choices.hi, int)):
                    raise ValueError(f"finite=True needs countable buckets: {path!r} is a Span of floats")
        if self.label_format is not None:
            try:
                self._format_label(self._values(0 if self.finite else None, _task_rng(1)))
            except (KeyError, IndexError, AttributeError, ValueError) as exc:
                raise ValueError(f"label_format {self.label_format!r} does not apply to the buckets: {exc!r}") from exc
        return self

    @staticmethod
    def _count(choices: list[Any] | Span) -> int:
        return len(choices) if isinstance(choices, list) else int(choices.hi) - int(choices.lo) + 1

    @property
    def size(self) -> int | None:
        if not self.finite:
            return None
        return int(np.prod([self._count(c) for c in self.buckets.values()], dtype=object))

    def _values(self, index: int | None, rng: np.random.Generator) -> dict[str, Any]:
        """The value of each bucket: the ``index``-th combination (last bucket fastest), or random draws."""
        if index is None:
            return {
                path: choices.draw(rng) if isinstance(choices, Span) else choices[int(rng.integers(len(choices)))]
                for path, choices in self.buckets.items()
            }
        values: dict[str, Any] = {}
        for path, choices in reversed(self.buckets.items()):
            index, pick = divmod(index, self._count(choices))
            values[path] = int(choices.lo) + pick if isinstance(choices, Span) else choices[pick]
        return {path: values[path] for path in self.buckets}

    def _format_label(self, values: dict[str, Any]) -> str:
        assert self.label_format is not None
        return self.label_format.format_map({path.replace(".", "_"): v for path, v in values.items()})

    def generate(self, task_id: int) -> Task:
        values = self._values(task_id - 1 if self.finite else None, _task_rng(task_id))
        cfg = copy.deepcopy(self.base)
        for path, value in values.items():
            _set_path(cfg, path, copy.deepcopy(value))
        if self.label_format is not None:
            return Task(task_id, f"{self.label}:{self._format_label(values)}", cfg)
        keys = self.label_keys if self.label_keys is not None else list(self.buckets)
        # A random Span value is named by its range (all its tasks share the label); an enumerated one by itself.
        parts = [
            f"{path}={self.buckets[path] if isinstance(self.buckets[path], Span) and not self.finite else values[path]}"
            for path in keys
        ]
        return Task(task_id, f"{self.label}:{','.join(parts)}", cfg)


class TaskGeneratorSet(TaskGenerator):
    """Picks one of several generators by weight (from the task id), then lets it generate the task.

    When every generator is finite the set is too: its ids run through the first generator's ids, then the
    second's (offset by the first's size), and so on; weights do not apply then (each configuration once).
    """

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
                raise ValueError(f"weights has {len(self.weights)} entries for {len(self.generators)} generators")
            if any(not np.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"weights must be finite, >= 0 and not all zero, got {self.weights}")
        finite = [g.size is not None for g in self.generators]
        if any(finite) and not all(finite):
            raise ValueError("a TaskGeneratorSet mixes finite and infinite generators: make all finite or none")
        if all(finite) and self.weights is not None:
            raise ValueError("weights do not apply to a set of finite generators: each configuration is held once")
        return self

    @property
    def size(self) -> int | None:
        sizes = [g.size for g in self.generators]
        return None if any(n is None for n in sizes) else sum(n for n in sizes if n is not None)

    def generate(self, task_id: int) -> Task:
        if self.size is not None:
            local = task_id
            for generator in self.generators:
                assert generator.size is not None
                if local <= generator.size:
                    return dataclasses.replace(generator.locate(generator.generate(local)), task_id=task_id)
                local -= generator.size
        weights = np.asarray(self.weights if self.weights is not None else [1.0] * len(self.generators))
        cdf = np.cumsum(weights / weights.sum())
        pick = int(np.searchsorted(cdf, _task_rng(task_id, 1).random(), side="right"))
        generator = self.generators[min(pick, len(self.generators) - 1)]
        return generator.locate(generator.generate(task_id))
