"""The algorithm interface: one config class, one module and one Lua file per algorithm.

An :class:`Algorithm` names its config class and the shape of the state it keeps in the store: a pool of
tasks (:class:`PoolAlgorithm`) or a sequence of stages. Subclassing registers it by ``name``; the
package scan of :func:`curriculum_redis.algorithms.registry` finds every module of ``algorithms/`` (and
the ``curriculum_redis.algorithms`` entry points), so adding an algorithm touches no other module.

Every pool algorithm shares one packed record layout per pool slot (``RECORD_FIELDS`` doubles,
``RECORD_SIZE`` bytes, see :mod:`curriculum_redis.store.schema`): the store-owned fields
(``GENERIC_FIELDS``), then the algorithm's headline score, then up to ``MAX_STATE_FIELDS`` state
fields. The store writes the generic fields itself; the per-outcome update of the score and state fields
is the algorithm's, in Lua (its :meth:`Algorithm.lua_path`, spliced into ``record_outcomes.lua``) and
mirrored in Python (:meth:`PoolAlgorithm.update`, used by the in-process store, bit for bit the same
doubles). Turning a snapshot into probabilities and picking eviction candidates is pure numpy.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt

from curriculum_redis.config import AlgorithmConfig, CurriculumConfig, PoolConfig
from curriculum_redis.errors import ConfigError
from curriculum_redis.store.schema import GENERIC_FIELDS, MAX_STATE_FIELDS
from curriculum_redis.store.scripts import lua_dir

if TYPE_CHECKING:
    from curriculum_redis.store.base import CurriculumStore, Outcome, RecordResult, ScoreSnapshot
    from curriculum_redis.tasks import Task

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

Shape = Literal["pool", "stages"]
"""The state an algorithm keeps in the store: per task in a pool, or per stage."""

LUA_PREFIX = "algorithm_"


class TaskView(Protocol):
    """What one process knows of a namespace's shared state, and how it draws and reports tasks from it.

    A curriculum keeps one per process, refreshed now and then; an observer (the CLI, ``Curriculum.stats()``
    before attaching) makes one without a :class:`CurriculumConfig` and only reads through it."""

    counts_draws: bool
    """Whether the store keeps per-label counts of the tasks drawn (a pool does; stages do not)."""

    @property
    def ready(self) -> bool: ...

    def refresh(self, store: CurriculumStore) -> None:
        """Read the shared state into the view (a writer's view may fill or prune a pool on the way)."""
        ...

    def load(self, store: CurriculumStore) -> None:
        """Read exactly what the store holds after an import, changing nothing."""
        ...

    def draw(self) -> Task: ...

    def outcome(self, task_id: int, score: float) -> Outcome: ...

    def failure(self, task_id: int) -> Outcome: ...

    def on_recorded(self, result: RecordResult) -> None: ...

    def probabilities(self) -> dict[int, float]:
        """Each task's sampling probability in this view (as last refreshed)."""
        ...

    def current_probabilities(self, store: CurriculumStore) -> dict[int, float]:
        """Each task's sampling probability on what the store holds now (read-only)."""
        ...

    def stats(self, store: CurriculumStore, last_counters: dict[str, int] | None = None) -> dict[str, float]:
        """Statistics of the whole namespace from a fresh read (read-only). With ``last_counters``, also
        each counter's change since then (``epoch/<counter>``), and ``last_counters`` is updated."""
        ...

    def label_table(self, store: CurriculumStore) -> dict[str, dict[str, float]]: ...


_CLASSES: dict[str, type[Algorithm]] = {}
_INSTANCES: dict[type[Algorithm], Algorithm] = {}


class Algorithm(ABC):
    """One curriculum algorithm. Instances are stateless; the registry holds one per name.

    A concrete subclass sets ``name`` (the value of its config's ``algorithm`` field), ``config_class``
    and ``shape``, and is registered when its class statement runs."""

    name: ClassVar[str]
    config_class: ClassVar[type[AlgorithmConfig]]
    shape: ClassVar[Shape]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _register(cls)

    @classmethod
    def lua_path(cls) -> Path:
        """The algorithm's Lua file: ``lua/algorithm_<name>.lua`` for the package's own algorithms;
        an algorithm defined elsewhere overrides this with a path beside its module."""
        return lua_dir() / f"{LUA_PREFIX}{cls.name}.lua"

    @classmethod
    def lua_source(cls) -> str:
        """The text of :meth:`lua_path`."""
        path = cls.lua_path()
        if not path.is_file():
            raise ConfigError(f"algorithm {cls.name!r} has no Lua file at {path}")
        return path.read_text(encoding="utf-8")

    @abstractmethod
    def view(self, hypers: Any, rng: np.random.Generator, config: CurriculumConfig | None = None) -> TaskView:
        """A process's view of a namespace run by this algorithm with ``hypers``. Without ``config`` the
        view only observes (statistics and label tables), so a reader needs no task generator."""


def _register(cls: type[Algorithm]) -> None:
    name = cls.name
    tag = cls.config_class.model_fields["algorithm"].default
    if tag != name:
        raise ConfigError(f"{cls.__qualname__}.name is {name!r} but its config's algorithm is {tag!r}")
    known = _CLASSES.get(name)
    if known is not None and _qualified(known) != _qualified(cls):
        raise ConfigError(f"two algorithms are named {name!r}: {_qualified(known)} and {_qualified(cls)}")
    _CLASSES[name] = cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def registered() -> dict[str, Algorithm]:
    """Every algorithm registered so far, by name (one instance each)."""
    out: dict[str, Algorithm] = {}
    for name, cls in _CLASSES.items():
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise ConfigError(f"algorithm {name!r} ({_qualified(cls)}) does not define {missing}")
        if cls not in _INSTANCES:
            _INSTANCES[cls] = cls()
        out[name] = _INSTANCES[cls]
    return out


class PoolAlgorithm(Algorithm):
    """An algorithm over the shared task pool: per-task state in one packed record, a sampling
    distribution over the pool, and eviction of the tasks it values least."""

    shape: ClassVar[Shape] = "pool"
    config_class: ClassVar[type[PoolConfig]]
    score_field: ClassVar[str]
    """The headline score (the record's field after the generic ones): what eviction re-checks on the
    server and the label EMAs average."""
    state_fields: ClassVar[tuple[str, ...]] = ()
    admits_by_label: ClassVar[bool] = False
    """True when :meth:`admission_weights` chooses replacements among several candidates (drawing those
    costs generator calls and random numbers, so other algorithms keep the generator's own draws)."""

    def view(self, hypers: Any, rng: np.random.Generator, config: CurriculumConfig | None = None) -> TaskView:
        from curriculum_redis.pool import PoolView  # the pool view is built on this interface

        return PoolView(hypers, self, rng, config)

    @classmethod
    def snapshot_fields(cls) -> tuple[str, ...]:
        pads = tuple(f"unused_{i}" for i in range(len(cls.state_fields), MAX_STATE_FIELDS))
        return (*GENERIC_FIELDS, cls.score_field, *cls.state_fields, *pads)

    @classmethod
    def stored_fields(cls) -> tuple[str, ...]:
        """The algorithm's fields that a task hash holds beside the generic ones (no unused slots)."""
        return (cls.score_field, *cls.state_fields)

    @classmethod
    def dtype(cls) -> np.dtype[Any]:
        return np.dtype([(name, "<f8") for name in cls.snapshot_fields()])

    @abstractmethod
    def meta_fields(self, cfg: Any) -> dict[str, str]:
        """The hyperparameters the Lua update reads from meta, as strings (the Lua file's ``HYPERS``)."""

    @abstractmethod
    def update(self, state: dict[str, float], x: float, success: float, cfg: Any, clock: int) -> float:
        """Apply one normalised outcome ``x`` (``success`` is 1.0 or 0.0) to ``state`` in place and return
        the new headline score. ``state`` holds ``completions`` (before this outcome), the score field and
        the state fields; ``clock`` is the global episode count including this outcome. Must give the same
        doubles as ``update`` in the algorithm's Lua file."""

    @abstractmethod
    def distribution(self, snapshot: ScoreSnapshot, cfg: Any) -> FloatArray:
        """Sampling probability of each task of ``snapshot``; sums to 1, never NaN."""

    def eviction_candidates(self, snapshot: ScoreSnapshot, cfg: Any, limit: int) -> tuple[IndexArray, FloatArray]:
        """At most ``limit`` evictable task indices, lowest score first, and for each the highest score the
        server may still find on the task and evict it. Default: tasks with ``min_presentations_for_eviction``
        outcomes whose score is at or below the ``eviction_threshold_percentile`` quantile."""
        pool: PoolConfig = cfg
        score = snapshot.column(self.score_field)
        idx, threshold = low_score_candidates(
            snapshot.column("completions"), score, pool.eviction_threshold_percentile,
            pool.min_presentations_for_eviction, limit,
        )  # fmt: skip
        return idx, np.full(idx.size, threshold)

    def admission_weights(self, snapshot: ScoreSnapshot, cfg: Any, label_hashes: IndexArray) -> FloatArray | None:
        """Relative odds of admitting each candidate replacement (by its label), given the pool now; None
        admits candidates as the generator draws them. Read only when ``admits_by_label`` is true."""
        return None


def low_score_candidates(
    completions: FloatArray, score: FloatArray, percentile: float, min_presentations: int, limit: int
) -> tuple[IndexArray, float]:
    """Indices of at most ``limit`` tasks with ``min_presentations`` outcomes whose score is at or below
    the ``percentile`` quantile of the pool's scores, lowest first, and that quantile."""
    if score.size == 0 or limit <= 0:
        return np.zeros(0, dtype=np.intp), 0.0
    threshold = float(np.quantile(score, percentile))
    ok = (np.asarray(completions) >= min_presentations) & (score <= threshold)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(score[idx], kind="stable")]
    return order[:limit], threshold


def mix_uniform(probs: FloatArray, rate: float) -> FloatArray:
    """``probs`` with ``rate`` of the mass spread evenly over every task."""
    n = probs.size
    if n == 0:
        return probs
    out = (1.0 - rate) * probs + rate / n
    return np.asarray(out / out.sum(), dtype=np.float64)


__all__ = [
    "Algorithm",
    "PoolAlgorithm",
    "Shape",
    "TaskView",
    "low_score_candidates",
    "mix_uniform",
    "registered",
]
