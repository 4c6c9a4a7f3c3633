"""Read-only views of any namespace, any algorithm: for monitoring and for the CLI.

The readers (:func:`read_stats`, :func:`read_labels`, :func:`read_tasks`, :func:`stage_state`) only read;
none attaches, registers a client, creates, evicts or refreshes anything, so observing a running curriculum
(or comparing a checkpoint with the namespace it came from) leaves every key unchanged. They need no
config: the namespace's own hyperparameters say which algorithm runs it, and that algorithm's view (the one
``Curriculum`` draws from) computes what they report, whatever the shape of its state.

``read_stats`` reports what ``Curriculum.stats()`` reports, without the per-reader ``epoch/...`` deltas and
the process-local ``outcomes_dropped_locally``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curriculum_redis.algorithms import PoolAlgorithm, find_algorithm, get_algorithm, pool_algorithms
from curriculum_redis.algorithms.base import TaskView
from curriculum_redis.algorithms.sequential import SequentialConfig, stage_stats
from curriculum_redis.config import AlgorithmConfig, CurriculumConfig, PoolConfig
from curriculum_redis.errors import ConfigError, NamespaceNotFoundError, StoreError
from curriculum_redis.state import TaskRecord
from curriculum_redis.store.connection import Client
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.tasks import TaskGenerator

__all__ = [
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
def _opened(
    client: Client, namespace: str, generator: TaskGenerator | None = None
) -> Iterator[tuple[RedisStore, AlgorithmConfig, TaskView]]:
    """A store over ``client``, the namespace's hyperparameters and an observing view of it. The caller's
    client stays open. With the namespace's ``generator``, the view reads tasks' positions (``coordinates``)
    as the workers do, so its probabilities are theirs."""
    store = RedisStore(client, namespace)
    try:
        hypers = store.read_hypers()
        if hypers is None:
            stage = bool(client.exists(NamespaceKeys(namespace).stage_config))
            raise NamespaceNotFoundError(namespace, store.where, stage)
        config = None
        if generator is not None and isinstance(hypers, PoolConfig):
            config = CurriculumConfig(task_generator=generator, algorithm=hypers, namespace=namespace)
        view = find_algorithm(hypers.algorithm).view(hypers, np.random.default_rng(), config)
        yield store, hypers, view
    finally:
        if store.client is not client:  # a twin made for a decoding or replica-routed client
            store.close()


def read_stats(client: Client, namespace: str) -> dict[str, float]:
    """The namespace's statistics as one flat dict: counters, pool and per-label statistics for a task
    pool, ``stage/...`` for a sequential curriculum."""
    with _opened(client, namespace) as (store, _, view):
        return view.stats(store)


def read_labels(client: Client, namespace: str) -> dict[str, dict[str, float]]:
    """The per-label table (label -> column -> value); a sequential curriculum's labels are its stages."""
    with _opened(client, namespace) as (store, _, view):
        return view.label_table(store)


def read_tasks(
    client: Client,
    namespace: str,
    sort: str = "probability",
    label: str | None = None,
    limit: int | None = None,
    generator: TaskGenerator | None = None,
) -> list[dict[str, Any]]:
    """Every active task (those whose label contains ``label``, if given) with the fields of the namespace's
    algorithm, ``algorithm``, ``probability`` and ``mean_score``; sorted by ``sort`` descending, then id.
    Tasks with ``coordinates`` need the ``generator`` for their probabilities to include nearness."""
    with _opened(client, namespace, generator) as (store, hypers, view):
        state = store.export_state()
        prob_of = view.current_probabilities(store)
    algorithm = find_algorithm(hypers.algorithm)
    own = algorithm.stored_fields() if isinstance(algorithm, PoolAlgorithm) else ()
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


def stage_state(client: Client, namespace: str) -> StageReport:
    """The stage curriculum stored in ``namespace``, with the config stored there.

    Raises :class:`NamespaceNotFoundError` when nothing of the namespace exists, and :class:`StoreError`
    when it is not a stage curriculum.
    """
    with _opened(client, namespace) as (store, hypers, _):
        if not isinstance(hypers, SequentialConfig):
            raise StoreError(f"namespace {namespace!r} runs {hypers.algorithm}, not a stage curriculum")
        state = store.stage_state()
    rules = [
        s.stop_condition or f"success >= {s.advance_threshold:g} over {s.window}, after {s.min_episodes} episodes"
        for s in hypers.stages
    ]
    return StageReport(
        namespace,
        [s.name for s in hypers.stages],
        rules,
        state.index,
        state.version,
        dataclasses.asdict(state),
        stage_stats(state, hypers.stages),
    )
