"""Read-only views of a task-pool namespace, for monitoring and for the CLI.

Every function here reads; none attaches, registers a client, creates, evicts or refreshes anything, so
observing a running curriculum (or comparing a checkpoint with the namespace it came from) leaves every key
unchanged. They need no config: the namespace's own hyperparameters say which algorithm scores its pool,
so they work for every algorithm.

``read_stats`` reports what ``Curriculum.stats()`` reports, without the per-reader ``epoch/...`` deltas and
the process-local ``outcomes_dropped_locally``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from curriculum_redis.algorithms import ALGORITHMS, algorithm_of
from curriculum_redis.config import AnyAlgorithmConfig
from curriculum_redis.errors import ConfigError, NamespaceNotFoundError
from curriculum_redis.state import TaskRecord
from curriculum_redis.stats import flatten_labels, label_table, pool_stats
from curriculum_redis.store.base import COUNTERS, ScoreSnapshot
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import Client, RedisStore

__all__ = ["NamespaceNotFoundError", "TaskSort", "read_labels", "read_stats", "read_tasks"]

TaskSort = Literal["probability", "lp", "score", "learnability", "completions"]
"""What :func:`read_tasks` can sort by (descending): the probability, a score field, or completions."""


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


def _distribution(
    store: RedisStore, hypers: AnyAlgorithmConfig
) -> tuple[ScoreSnapshot, npt.NDArray[np.float64]]:
    snap = store.snapshot()
    return snap, algorithm_of(hypers).distribution(snap, hypers)


def read_stats(client: Client, namespace: str) -> dict[str, float]:
    """The namespace's counters, pool statistics and per-label statistics as one flat dict."""
    with _opened(client, namespace) as (store, hypers):
        snap, probs = _distribution(store, hypers)
        counters = store.counters()
        labels = store.label_stats()
    field = algorithm_of(hypers).score_field
    out: dict[str, float] = {name: float(counters.get(name, 0)) for name in COUNTERS}
    out.update(pool_stats(snap, probs, hypers.num_active_tasks, field))
    out.update(flatten_labels(label_table(snap, probs, labels, field)))
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
    sort: TaskSort = "probability",
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
    # A record carries every algorithm's fields; show this namespace's algorithm's only.
    other = {f for a in ALGORITHMS.values() for f in a.stored_fields()} - set(algorithm.stored_fields())
    if sort not in (set(TaskRecord.model_fields) - other - {"label"}) | {"probability", "mean_score"}:
        raise ConfigError(f"cannot sort by {sort!r}: the namespace's {algorithm.name} algorithm stores no such field")
    rows = []
    for task in state.tasks:
        if label is not None and label not in task.label:
            continue
        row = task.model_dump(exclude=other)
        row["algorithm"] = algorithm.name
        row["probability"] = prob_of.get(task.task_id, 0.0)
        row["mean_score"] = task.score_sum / task.completions if task.completions else 0.0
        rows.append(row)
    rows.sort(key=lambda r: (-float(r[sort]), int(r["task_id"])))
    return rows if limit is None else rows[:limit]
