"""Read-only views of any namespace, any algorithm: for monitoring and for the CLI.

The task-pool readers (:func:`read_stats`, :func:`read_labels`, :func:`read_tasks`) only read; none
attaches, registers a client, creates, evicts or refreshes anything, so observing a running curriculum (or
comparing a checkpoint with the namespace it came from) leaves every key unchanged. They need no config:
the namespace's own hyperparameters say which algorithm scores its pool, so they work for every algorithm.
:func:`stage_state` reads a stage curriculum's position and per-stage counts.

``read_stats`` reports what ``Curriculum.stats()`` reports, without the per-reader ``epoch/...`` deltas and
the process-local ``outcomes_dropped_locally``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from curriculum_redis.algorithms import algorithm_of, get_algorithm, pool_algorithms
from curriculum_redis.config import AnyAlgorithmConfig
from curriculum_redis.errors import ConfigError, NamespaceNotFoundError, StoreError
from curriculum_redis.state import TaskRecord
from curriculum_redis.stats import flatten_labels, label_table, pool_stats
from curriculum_redis.store.base import COUNTERS, ScoreSnapshot
from curriculum_redis.store.connection import Client
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore

__all__ = [
    "NamespaceNotFoundError",
    "StageReport",
    "read_labels",
    "read_stats",
    "read_tasks",
    "sort_keys",
    "stage_state",
    "task_columns",
]

GENERIC_SORT_KEYS = ("probability", "completions", "mean_score")
"""What :func:`read_tasks` sorts by for every algorithm; each algorithm adds its stored fields."""


def sort_keys() -> list[str]:
    """Every key :func:`read_tasks` may sort by under some registered algorithm (the CLI's ``--sort``)."""
    stored = {name for algorithm in pool_algorithms().values() for name in algorithm.stored_fields()}
    return [*GENERIC_SORT_KEYS, *sorted(stored - set(GENERIC_SORT_KEYS))]


def task_columns(algorithm: str) -> tuple[str, ...]:
    """The columns of a :func:`read_tasks` row that the named algorithm stores, its score first."""
    return get_algorithm(algorithm).stored_fields()


@contextmanager
def _opened(client: Client, namespace: str) -> Iterator[tuple[RedisStore, AnyAlgorithmConfig]]:
    """A store over ``client`` and the namespace's hyperparameters. The caller's client stays open."""
    store = RedisStore(client, namespace)
    try:
        hypers = store.read_hypers()
        if hypers is None:
            stage = bool(client.exists(NamespaceKeys(namespace).prefix + ":stage:config"))
            raise NamespaceNotFoundError(namespace, store.where, stage)
        yield store, hypers
    finally:
        if store.client is not client:  # a twin made for a decoding or replica-routed client
            store.close()


def _distribution(store: RedisStore, hypers: AnyAlgorithmConfig) -> tuple[ScoreSnapshot, npt.NDArray[np.float64]]:
    snap = store.snapshot()
    return snap, algorithm_of(hypers).distribution(snap, hypers)


def read_stats(client: Client, namespace: str) -> dict[str, float]:
    """The namespace's counters, pool statistics and per-label statistics as one flat dict."""
    with _opened(client, namespace) as (store, hypers):
        snap, probs = _distribution(store, hypers)
        counters = store.counters()
        labels = store.label_stats()
    score_field = algorithm_of(hypers).score_field
    out: dict[str, float] = {name: float(counters.get(name, 0)) for name in COUNTERS}
    out.update(pool_stats(snap, probs, hypers.num_active_tasks, score_field))
    out.update(flatten_labels(label_table(snap, probs, labels, score_field)))
    return out


def read_labels(client: Client, namespace: str) -> dict[str, dict[str, float]]:
    """The per-label table (label -> column -> value); ``mean_lp`` and ``lp_ema`` describe the namespace's
    headline score under an algorithm other than learning progress."""
    with _opened(client, namespace) as (store, hypers):
        snap, probs = _distribution(store, hypers)
        labels = store.label_stats()
    return label_table(snap, probs, labels, algorithm_of(hypers).score_field)


def read_tasks(
    client: Client,
    namespace: str,
    sort: str = "probability",
    label: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Every active task (those whose label contains ``label``, if given) with the fields of the namespace's
    algorithm, ``algorithm``, ``probability`` and ``mean_score``; sorted by ``sort`` descending, then id."""
    with _opened(client, namespace) as (store, _):
        state = store.export_state()
        snap, probs = _distribution(store, state.hypers)
    prob_of = dict(zip(snap.task_ids.tolist(), probs.tolist(), strict=True))
    algorithm = algorithm_of(state.hypers)
    own = algorithm.stored_fields()
    generic = set(TaskRecord.model_fields)
    if sort not in (generic - {"label"}) | set(own) | set(GENERIC_SORT_KEYS):
        raise ConfigError(f"cannot sort by {sort!r}: the namespace's {algorithm.name} algorithm stores no such field")
    rows = []
    for task in state.tasks:
        if label is not None and label not in task.label:
            continue
        row = task.model_dump(include=generic) | {name: task.value(name) for name in own}
        row["algorithm"] = algorithm.name
        row["probability"] = prob_of.get(task.task_id, 0.0)
        row["mean_score"] = task.score_sum / task.completions if task.completions else 0.0
        rows.append(row)
    rows.sort(key=lambda r: (-float(r[sort]), int(r["task_id"])))
    return rows if limit is None else rows[:limit]


@dataclass(frozen=True)
class StageReport:
    """A stage curriculum as stored: its stages' names and advance rules, where it stands, its statistics."""

    namespace: str
    names: list[str]
    rules: list[str]
    index: int
    version: int
    state: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


def stage_configs(config: Any) -> list[Any]:
    """The stages of a stage curriculum's config: its own ``stages``, or its algorithm's once the
    sequential curriculum is an algorithm of ``CurriculumConfig``."""
    stages = getattr(config, "stages", None)
    return list(stages if stages is not None else config.algorithm.stages)


def stage_state(client: Client, namespace: str) -> StageReport:
    """The stage curriculum stored in ``namespace``, with the config stored there.

    Raises :class:`NamespaceNotFoundError` when nothing of the namespace exists, and :class:`StoreError`
    when it is not a stage curriculum.
    """
    import dataclasses

    from curriculum_redis.stage import StageCurriculum

    keys = NamespaceKeys(namespace)
    if not client.exists(keys.prefix + ":stage:config"):
        algorithm = client.hget(keys.meta, "algorithm")
        if algorithm is None:
            raise NamespaceNotFoundError(namespace, RedisStore(client, namespace).where)
        name = algorithm.decode() if isinstance(algorithm, bytes) else str(algorithm)
        raise StoreError(f"namespace {namespace!r} runs {name}, not a stage curriculum")
    curriculum = StageCurriculum.from_namespace(client, namespace)
    try:
        state, stats = curriculum.state(), curriculum.stats()
    finally:
        curriculum.close()
    stages = stage_configs(curriculum.config)
    rules = [
        s.stop_condition or f"success >= {s.advance_threshold:g} over {s.window}, after {s.min_episodes} episodes"
        for s in stages
    ]
    return StageReport(
        namespace, [s.name for s in stages], rules, state.index, state.version, dataclasses.asdict(state), stats
    )
