"""A namespace into and out of ``CurriculumState``.

Both directions are consistent copies: an export reads everything in one MULTI/EXEC (repeated if the pool
changed since its snapshot), an import writes everything in one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import redis
from redis.cluster import RedisCluster

from curriculum_redis.algorithms import algorithm_of
from curriculum_redis.config import PoolConfig, parse_algorithm_json
from curriculum_redis.errors import StoreError
from curriculum_redis.state import LABEL_STAT_FIELDS, SCHEMA_VERSION, CurriculumState, LabelStats, TaskRecord
from curriculum_redis.state_checks import semantic_problem
from curriculum_redis.store.base import ScoreSnapshot, current_counters
from curriculum_redis.store.chunks import read_rest
from curriculum_redis.store.connection import Client, map_errors, text
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import INT_TASK_FIELDS, RECORD_FIELDS, RECORD_SIZE, SEGMENT_RECORDS
from curriculum_redis.store.scripts import ScriptSet

WATCH_RETRIES = 50
"""Attempts of an atomic replace while workers keep creating or evicting tasks."""
FENCE_MS = 10_000
"""The longest a drop or replace holds off task creation and eviction (fence_namespace.lua): it takes
milliseconds, and the fence goes with it; this bounds the wait should the admin die first."""

CLUSTER_CAN_WATCH = hasattr(redis.cluster, "TransactionStrategy")
"""redis-py 6.2 and later run WATCH/MULTI/EXEC on a cluster pipeline (keys of one slot, as a namespace's are)."""

EXPORT_ATTEMPTS = 100


def scan_namespace(client: Client, namespace: str, pattern: str) -> list[str]:
    """SCAN for ``pattern`` (a pattern of the namespace's keys): on a cluster, on the primary owning the
    namespace's slot only (a plain ``scan_iter`` there walks every primary). Keys the pattern matches that are
    not the namespace's own (see :meth:`NamespaceKeys.owns`) are left out."""
    keys = NamespaceKeys(namespace)
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(keys.meta)  # type: ignore[no-untyped-call]
        found = client.scan_iter(match=pattern, count=1000, target_nodes=node)
    else:
        found = client.scan_iter(match=pattern, count=1000)
    return [key for key in map(text, found) if keys.owns(key)]


def format_field(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def task_record(task_id: int, raw: dict[str, str]) -> TaskRecord:
    values: dict[str, Any] = {n: (int(v) if n in INT_TASK_FIELDS else float(v)) for n, v in raw.items() if n != "label"}
    return TaskRecord(task_id=task_id, label=raw.get("label", ""), **values)


def label_stats_from(row: dict[bytes, bytes]) -> LabelStats:
    raw = {f.decode(): v.decode() for f, v in row.items()}
    values: dict[str, Any] = {"label": raw.get("label", "")}
    for name in LABEL_STAT_FIELDS:
        if name in raw:
            values[name] = float(raw[name]) if name in ("score_sum", "lp_ema") else int(float(raw[name]))
    return LabelStats(**values)


def label_stats_on(client: Client, keys: NamespaceKeys) -> dict[int, LabelStats]:
    """Every label's aggregates, read on ``client`` (the primary or a replica)."""
    hashes = [int(h) for h in client.hkeys(keys.labels)]
    pipe = client.pipeline(transaction=False)
    for h in hashes:
        pipe.hgetall(keys.label(h))
    rows = pipe.execute()
    return {h: label_stats_from(row) for h, row in zip(hashes, rows, strict=True)}


def export_state(
    client: Client, keys: NamespaceKeys, snapshot: Callable[[], ScoreSnapshot], where: str
) -> CurriculumState:
    """A consistent copy of the namespace: every read after the snapshot is one MULTI/EXEC, and the
    whole read is repeated if the pool changed in between."""
    for _ in range(EXPORT_ATTEMPTS):
        first = snapshot()
        ids = first.task_ids.tolist()
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(keys.meta)
        pipe.hgetall(keys.counters)
        pipe.hgetall(keys.labels)
        pipe.hgetall(keys.clients)
        pipe.xrange(keys.history)
        pipe.hgetall(keys.history_labels)
        for task_id in ids:
            pipe.hgetall(keys.task(task_id))
        for h in first.label_hashes.tolist():
            pipe.hgetall(keys.label(h))
        with map_errors(where):
            meta, counters, labels_raw, clients, history, history_labels, *rows = pipe.execute()
        if b"hypers" not in meta:
            raise StoreError(f"namespace {keys.namespace!r} does not exist on {where}")
        if int(meta.get(b"pool_version", -1)) == first.pool_version:
            break
    else:
        raise StoreError(f"namespace {keys.namespace!r} changes too fast to export a consistent copy")
    labels = {int(h): text(v) for h, v in labels_raw.items()}
    tasks = []
    for task_id, row in zip(ids, rows[: len(ids)], strict=True):
        raw = {text(f): text(v) for f, v in row.items()}
        if "label_hash" not in raw or "slot" not in raw:  # lost or re-created by hand: no traceback, a way out
            raise StoreError(
                f"task {task_id} is in the pool of namespace {keys.namespace!r} but {keys.task(task_id)} is "
                f"missing or partial: run `curriculum-redis --namespace {keys.namespace} check --repair`"
            )
        raw["label"] = labels.get(int(raw["label_hash"]), "")
        tasks.append(task_record(task_id, raw))
    with map_errors(where):
        label_stats = label_stats_on(client, keys)
    return CurriculumState(
        namespace=keys.namespace,
        hypers=parse_algorithm_json(meta[b"hypers"]),
        pool_version=int(meta.get(b"pool_version", 0)),
        tasks=sorted(tasks, key=lambda t: t.slot),
        labels=labels,
        label_stats=label_stats,
        counters=current_counters({text(n): int(v) for n, v in counters.items()}),
        client_seqs={int(c): int(s) for c, s in clients.items()},
        history=[(text(i), {text(f): text(v) for f, v in fields.items()}) for i, fields in history],
        history_labels={text(f): text(v) for f, v in history_labels.items()},
        history_every=int(meta[b"history_every"]) if b"history_every" in meta else None,
    )


def import_state(
    client: Client,
    keys: NamespaceKeys,
    state: CurriculumState,
    meta_fields: Callable[[PoolConfig], dict[str, str]],
    where: str,
) -> None:
    """Replace the namespace by ``state`` in one MULTI/EXEC: all of it is written, or none. ``meta_fields``
    gives the fields the scripts read for ``state.hypers``."""
    hypers = state.hypers
    if not isinstance(hypers, PoolConfig):
        raise StoreError(f"a state of the {hypers.algorithm} algorithm holds no task pool")
    if len(state.tasks) > hypers.num_active_tasks:
        raise StoreError(f"state holds {len(state.tasks)} tasks for num_active_tasks={hypers.num_active_tasks}")
    problem = semantic_problem(state)
    if problem:
        raise StoreError(f"refusing to import a state that no namespace can hold (nothing written): {problem}")

    def write(pipe: Any, existing: list[str]) -> None:
        if existing:
            pipe.delete(*existing)
        _write_state(pipe, keys, state, hypers, meta_fields)

    replace_namespace(client, keys, where, [keys.task_pattern, keys.label_pattern, keys.segment_pattern], write)


def replace_namespace(
    client: Client, keys: NamespaceKeys, where: str, patterns: list[str], write: Callable[[Any, list[str]], None]
) -> list[Any]:
    """Run ``write(pipe, existing keys)`` in one MULTI/EXEC, so that workers see the namespace whole or gone,
    and no task hash created meanwhile survives as an orphan. Returns the transaction's replies.

    A fence (``fence_namespace.lua``) first holds off task creation and eviction, whose scripts write meta:
    without it, workers evicting a few thousand times a second changed meta inside the WATCH window 50
    times in a row. The SCAN for ``patterns`` then runs once (it walks the whole database: tens of ms on a
    server holding many namespaces). Should the fence expire first, a WATCH on meta stays the guarantee, and
    :func:`live_keys` finds inside it what was created since the SCAN began. On a cluster too (a
    namespace's keys share one slot), with a redis-py that can WATCH there (6.2+); an older one runs one
    MULTI/EXEC unwatched. The drop deletes meta and the import rewrites it, taking the fence down; a
    failure lifts it."""
    with map_errors(where):
        ScriptSet(client)("fence_namespace", [keys.meta], [FENCE_MS], read=True)
    done = False
    try:
        with map_errors(where):
            scanned_at = client.hget(keys.meta, "pool_version")
            scanned = [k for p in patterns for k in scan_namespace(client, keys.namespace, p)]
        for _ in range(WATCH_RETRIES):
            with client.pipeline(transaction=True) as pipe:
                try:
                    with map_errors(where):
                        if CLUSTER_CAN_WATCH or not isinstance(client, RedisCluster):
                            pipe.watch(keys.meta)
                        existing = list(dict.fromkeys([*keys.fixed, *scanned, *live_keys(client, keys, scanned_at)]))
                        pipe.multi()
                        write(pipe, existing)
                        replies: list[Any] = pipe.execute()
                    done = True
                    return replies
                except redis.exceptions.WatchError:
                    continue
        raise StoreError(f"namespace {keys.namespace!r} on {where} kept changing: stop its workers and try again")
    finally:
        if not done:
            with contextlib.suppress(redis.exceptions.RedisError):
                client.hdel(keys.meta, "fence_until_ms")  # never creates meta


def live_keys(client: Client, keys: NamespaceKeys, scanned_at: Any = None) -> list[str]:
    """Every key the scripts may have created since a SCAN began at pool version ``scanned_at``: the
    ``:scores`` segments, the history and stage keys, and, if the pool changed since (every script that
    creates a task or a label bumps ``pool_version``), the pool's task hashes (an evicted task's hash is
    deleted with it, so the occupied slots name them all) and the label hashes (each registered in
    ``:labels`` by the script that creates it), read one bounded ``GETRANGE`` at a time up to the capacity."""
    version, raw_capacity = client.hmget(keys.meta, ["pool_version", "capacity"])
    capacity = int(raw_capacity or 0)
    segments = keys.scores_segments(capacity)
    fixed = [*segments, keys.history, keys.history_labels, *keys.stage_all]
    if scanned_at is not None and version == scanned_at:
        return fixed  # nothing created since the SCAN began: it listed everything
    label_hashes = [text(h) for h in client.hkeys(keys.labels)]
    records = b"".join(
        read_rest(client, key, 0, min(SEGMENT_RECORDS, capacity - k * SEGMENT_RECORDS) * RECORD_SIZE)
        for k, key in enumerate(segments)
        if capacity > k * SEGMENT_RECORDS
    )
    records = records[: len(records) // RECORD_SIZE * RECORD_SIZE]
    ids = np.frombuffer(records, dtype="<f8").reshape(-1, RECORD_FIELDS)[:, 0] if records else np.zeros(0)
    return [
        *fixed,
        *(keys.task(int(i)) for i in ids if i >= 1),
        *(keys.label(int(h)) for h in label_hashes if h.lstrip("-").isdigit()),
    ]


def _write_state(
    pipe: Any, keys: NamespaceKeys, state: CurriculumState, hypers: PoolConfig, meta_fields: Callable[..., Any]
) -> None:
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "hypers": hypers.model_dump_json(),
        "created_at": f"{time.time():.3f}",
        "pool_version": state.pool_version + 1,
        "pool_size": len(state.tasks),
        **meta_fields(hypers),
    }
    if state.history_every is not None:
        meta["history_every"] = str(state.history_every)
    pipe.hset(keys.meta, mapping=cast(Mapping[Any, Any], meta))
    pipe.delete(keys.history, keys.history_labels)
    for entry_id, entry in state.history:  # the same ids: the entries keep their times
        pipe.xadd(keys.history, cast(dict[Any, Any], entry), id=entry_id)
    if state.history_labels:
        pipe.hset(keys.history_labels, mapping=cast(Mapping[Any, Any], state.history_labels))
    pipe.hset(keys.counters, mapping=cast(Mapping[Any, Any], current_counters(state.counters)))
    if state.labels:
        pipe.hset(keys.labels, mapping={str(h): v for h, v in state.labels.items()})
    if state.client_seqs:
        pipe.hset(keys.clients, mapping={str(c): s for c, s in state.client_seqs.items()})
    algorithm = algorithm_of(hypers)
    records = np.zeros(len(state.tasks), dtype=algorithm.dtype())
    stored = [n for n in algorithm.snapshot_fields() if not n.startswith("unused_")]
    for slot, task in enumerate(sorted(state.tasks, key=lambda t: t.slot)):
        dumped = task.model_dump()
        fields = {n: dumped[n] for n in ("label_hash", *stored[2:])}
        fields["slot"] = slot
        pipe.hset(keys.task(task.task_id), mapping={n: format_field(v) for n, v in fields.items()})
        for name in stored:
            records[slot][name] = float(getattr(task, name))
    # :scores whole (as attach.lua sizes it), then the segments the tasks reach, each whole.
    for k in range(max(1, -(-len(state.tasks) // SEGMENT_RECORDS))):
        end = min((k + 1) * SEGMENT_RECORDS, hypers.num_active_tasks)
        part = np.zeros(end - k * SEGMENT_RECORDS, dtype=records.dtype)
        chunk = records[k * SEGMENT_RECORDS : end]
        part[: chunk.size] = chunk
        pipe.set(keys.scores_segment(k), part.tobytes())
    for h, stats in state.label_stats.items():
        pipe.hset(keys.label(h), mapping={n: format_field(v) for n, v in stats.model_dump().items()})
