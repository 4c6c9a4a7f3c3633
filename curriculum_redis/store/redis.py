"""Redis store: the curriculum's shared state in Redis, written only by the Lua scripts in ``lua/``.

No client-side lock exists: every write is one script call, atomic on the server. The connection is
made lazily and re-made in a forked or unpickled process; what crosses process boundaries is how to
connect (a URL or connection kwargs), never a socket.
"""

from __future__ import annotations

import os
import pickle
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis
import redis.exceptions
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import Script
from redis.retry import Retry

from curriculum_redis.config import LearningProgressConfig
from curriculum_redis.errors import ConfigError, ScriptError, StoreError, StoreUnavailableError
from curriculum_redis.state import (
    COUNTER_NAMES,
    LABEL_STAT_FIELDS,
    SCHEMA_VERSION,
    CurriculumState,
    LabelStats,
    TaskRecord,
)
from curriculum_redis.store.base import (
    SNAPSHOT_DTYPE,
    SNAPSHOT_FIELDS,
    Eviction,
    EvictionOutcome,
    OutcomeBatch,
    RecordResult,
    ScoreSnapshot,
)
from curriculum_redis.store.fastpath import ScriptRunner
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.scripts import script_sources
from curriculum_redis.tasks import Task

T = TypeVar("T")

SCRIPTED_HYPERS = (
    "ema_timescale",
    "slow_timescale_factor",
    "tracker_ema_alpha",
    "success_threshold",
    "early_progress_amplification",
)
"""Hyperparameters the scripts read from ``meta``; stored there as plain fields, readable in redis-cli."""

INT_TASK_FIELDS = ("label_hash", "slot", "completions", "consecutive_failures")


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


def default_client_kwargs() -> dict[str, Any]:
    """Retry briefly on connection errors (a retried write is harmless: batches are de-duplicated),
    and never hang forever on a dead server."""
    return {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=3),
        "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        "socket_connect_timeout": 5.0,
        "socket_timeout": 30.0,
        "health_check_interval": 30,
    }


def picklable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The connection settings that can cross a process boundary (locks, callbacks and pools can't;
    the defaults of :func:`default_client_kwargs` replace them in the new process)."""
    out = {}
    for name, value in kwargs.items():
        try:
            pickle.dumps(value)
        except (TypeError, AttributeError, pickle.PicklingError):
            continue
        out[name] = value
    return out


def meta_fields(hypers: LearningProgressConfig) -> dict[str, str]:
    fields = {name: repr(float(getattr(hypers, name))) for name in SCRIPTED_HYPERS}
    fields["scorer"] = "bidirectional" if hypers.use_bidirectional else "variance"
    fields["random_baseline"] = "" if hypers.random_baseline is None else repr(float(hypers.random_baseline))
    fields["capacity"] = str(hypers.num_active_tasks)
    return fields


class RedisStore:
    """The store protocol on Redis (standalone, replicated or cluster)."""

    _client_obj: redis.Redis | None

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._namespace = namespace
        self.keys = NamespaceKeys(namespace)
        self._url: str | None = None
        self._client_kwargs: dict[str, Any] = {}
        self._connection_class: type[redis.Connection] | None = None
        self._set_client(client)

    @classmethod
    def from_url(cls, url: str, namespace: str, **client_kwargs: Any) -> RedisStore:
        """A store that connects lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis URL must start with redis://, rediss:// or unix://, got {redact(url)!r}")
        store = cls.__new__(cls)
        store._namespace = namespace
        store.keys = NamespaceKeys(namespace)
        store._url = url
        store._client_kwargs = dict(client_kwargs)
        store._connection_class = None
        store._reset_connection()
        return store

    def _set_client(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        if kwargs.get("decode_responses"):
            # Scores arrive as packed bytes: a decoding client would mangle them, so use a twin that does not.
            kwargs["decode_responses"] = False
            client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
        self._connection_class = pool.connection_class
        self._client_kwargs = kwargs
        self._reset_connection()
        self._client_obj = client
        self._pid = os.getpid()

    def _reset_connection(self) -> None:
        self._client_obj = None
        self._scripts: dict[str, Script] = {}
        self._runners: dict[str, ScriptRunner] = {}
        self._pid = os.getpid()
        self._attached_hypers: LearningProgressConfig | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "namespace": self._namespace,
            "url": self._url,
            "client_kwargs": picklable(self._client_kwargs),
            "connection_class": self._connection_class,
            "attached_hypers": self._attached_hypers,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._namespace = state["namespace"]
        self.keys = NamespaceKeys(self._namespace)
        self._url = state["url"]
        self._client_kwargs = state["client_kwargs"]
        self._connection_class = state["connection_class"]
        self._reset_connection()
        self._attached_hypers = state["attached_hypers"]

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def where(self) -> str:
        """Where the data lives, without credentials."""
        if self._url is not None:
            return redact(self._url)
        host = self._client_kwargs.get("host") or self._client_kwargs.get("path") or "?"
        return f"redis at {host}:{self._client_kwargs.get('port', '')}"

    @property
    def client(self) -> redis.Redis:
        """The connection, made on first use and re-made in a forked child."""
        if self._client_obj is None or self._pid != os.getpid():
            attached = self._attached_hypers
            self._reset_connection()
            self._attached_hypers = attached
            if self._url is not None:
                kwargs = {**default_client_kwargs(), **self._client_kwargs, "decode_responses": False}
                self._client_obj = redis.Redis.from_url(self._url, **kwargs)
            else:
                assert self._connection_class is not None
                kwargs = {**default_client_kwargs(), **self._client_kwargs}
                pool = redis.ConnectionPool(connection_class=self._connection_class, **kwargs)
                self._client_obj = redis.Redis(connection_pool=pool)
        return self._client_obj

    def _script(self, name: str) -> Script:
        script = self._scripts.get(name)
        if script is None:
            # Script.__call__ runs EVALSHA and, on NOSCRIPT (restart, failover, SCRIPT FLUSH), loads it again.
            script = self._scripts[name] = self.client.register_script(script_sources()[name])
        return script

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailableError(f"cannot reach {self.where}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            message = str(exc)
            if message.startswith("CR_"):
                raise ScriptError(message) from exc
            raise StoreError(f"{self.where} refused a command: {message}") from exc

    def _invoke(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA on a dedicated connection when the client is a plain ``redis.Redis`` (the cheap
        path, see store.fastpath), through the client's Script object otherwise."""
        client = self.client
        if type(client) is redis.Redis:
            runner = self._runners.get(name)
            if runner is None:
                runner = self._runners[name] = ScriptRunner(client.connection_pool, script_sources()[name])
            return runner(keys, args)
        return self._script(name)(keys=list(keys), args=list(args))

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script; if the namespace vanished (a Redis restart without persistence, a drop),
        attach again with the last hyperparameters and retry once."""
        try:
            return self._call(lambda: self._invoke(name, keys, args))
        except ScriptError as exc:
            if not str(exc).startswith("CR_NO_NAMESPACE") or self._attached_hypers is None:
                raise
            self.attach(self._attached_hypers)
            return self._call(lambda: self._invoke(name, keys, args))

    # -- protocol --------------------------------------------------------------------------------

    def attach(self, hypers: LearningProgressConfig) -> LearningProgressConfig | None:
        fields = meta_fields(hypers)
        args: list[Any] = [SCHEMA_VERSION, hypers.model_dump_json(), f"{time.time():.3f}"]
        for name, value in fields.items():
            args += [name, value]
        stored = self._call(lambda: self._script("attach")(keys=[self.keys.meta, self.keys.scores], args=args))
        self._attached_hypers = hypers
        if not stored:
            return None
        try:
            return LearningProgressConfig.model_validate_json(stored)
        except ValueError as exc:
            raise StoreError(f"namespace {self._namespace!r} holds unreadable hyperparameters: {exc}") from exc

    def register_client(self) -> int:
        # Random, not a server counter: ids stay unique even if the namespace is wiped and recreated.
        return secrets.randbits(52) + 1

    def create_tasks(self, tasks: Sequence[Task]) -> list[int]:
        k = self.keys
        keys = [k.meta, k.counters, k.scores, k.labels]
        args: list[Any] = [len(tasks)]
        for task in tasks:
            keys += [k.task(task.task_id), k.label(task.label_hash)]
            args += [task.task_id, task.label_hash, task.label]
        created = self._run("create_tasks", keys, args)
        return [int(x) for x in created]

    def record(self, batch: OutcomeBatch) -> RecordResult:
        k = self.keys
        label_hashes = batch.label_hashes()
        label_index = {h: i + 1 for i, h in enumerate(label_hashes)}
        grouped = batch.by_task()
        keys = [k.meta, k.counters, k.scores, k.clients]
        keys += [k.task(task_id) for task_id in grouped]
        keys += [k.label(h) for h in label_hashes]
        args: list[Any] = [batch.client_id, batch.seq, len(grouped), len(label_hashes)]
        for task_id, outcomes in grouped.items():
            args += [task_id, outcomes[0].slot, label_index[outcomes[0].label_hash], len(outcomes)]
            args += [("f" if o.failed else "") + repr(float(o.score)) for o in outcomes]
        for h in label_hashes:
            args += [h, batch.scheduled.get(h, 0)]
        applied, recorded, unknown = self._run("record_outcomes", keys, args)
        return RecordResult(bool(applied), int(recorded), int(unknown))

    def evict_and_replace(self, eviction: Eviction) -> EvictionOutcome:
        k = self.keys
        victim_hash = self._call(lambda: self.client.hget(k.task(eviction.victim_id), "label_hash"))
        if victim_hash is None:
            return "victim_gone"
        new = eviction.replacement
        keys = [
            k.meta, k.counters, k.scores, k.labels,
            k.task(eviction.victim_id), k.task(new.task_id), k.label(int(victim_hash)), k.label(new.label_hash),
        ]
        args = [
            eviction.victim_id, int(victim_hash), new.task_id, new.label_hash, new.label, eviction.reason,
            eviction.min_presentations, repr(float(eviction.max_lp)), eviction.min_failures,
        ]
        result = self._run("evict_and_replace", keys, args)
        outcome = result.decode() if isinstance(result, bytes) else str(result)
        return outcome  # type: ignore[return-value]

    def snapshot(self) -> ScoreSnapshot:
        version, blob = self._call(lambda: self._script("read_snapshot")(keys=[self.keys.meta, self.keys.scores]))
        return ScoreSnapshot.from_bytes(int(version), bytes(blob))

    def read_task(self, task_id: int) -> TaskRecord | None:
        flat = self._call(lambda: self._script("read_task")(keys=[self.keys.task(task_id), self.keys.labels]))
        if not flat:
            return None
        raw = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return task_record(task_id, raw)

    def labels(self) -> dict[int, str]:
        raw = self._call(lambda: self.client.hgetall(self.keys.labels))
        return {int(h): text(label) for h, label in raw.items()}

    def label_stats(self) -> dict[int, LabelStats]:
        hashes = list(self.labels())
        pipe = self.client.pipeline(transaction=False)
        for h in hashes:
            pipe.hgetall(self.keys.label(h))
        rows = self._call(pipe.execute)
        return {h: label_stats_from(row) for h, row in zip(hashes, rows, strict=True)}

    def counters(self) -> dict[str, int]:
        raw = self._call(lambda: self.client.hgetall(self.keys.counters))
        out = dict.fromkeys(COUNTER_NAMES, 0)
        out.update({text(name): int(value) for name, value in raw.items()})
        return out

    def export_state(self) -> CurriculumState:
        """A consistent copy of the namespace: every read after the first is one MULTI/EXEC, and the
        whole read is repeated if the pool changed in between."""
        k = self.keys
        for _ in range(100):
            first = self.snapshot()
            ids = first.task_ids.tolist()
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(k.meta)
            pipe.hgetall(k.counters)
            pipe.hgetall(k.labels)
            pipe.hgetall(k.clients)
            for task_id in ids:
                pipe.hgetall(k.task(task_id))
            for h in first.label_hashes.tolist():
                pipe.hgetall(k.label(h))
            meta, counters, labels_raw, clients, *rows = self._call(pipe.execute)
            if b"hypers" not in meta:
                raise StoreError(f"namespace {self._namespace!r} does not exist on {self.where}")
            if int(meta.get(b"pool_version", -1)) == first.pool_version:
                break
        else:
            raise StoreError(f"namespace {self._namespace!r} changes too fast to export a consistent copy")
        labels = {int(h): text(v) for h, v in labels_raw.items()}
        tasks = []
        for task_id, row in zip(ids, rows[: len(ids)], strict=True):
            raw = {text(f): text(v) for f, v in row.items()}
            raw["label"] = labels.get(int(raw["label_hash"]), "")
            tasks.append(task_record(task_id, raw))
        return CurriculumState(
            namespace=self._namespace,
            hypers=LearningProgressConfig.model_validate_json(meta[b"hypers"]),
            pool_version=int(meta.get(b"pool_version", 0)),
            tasks=sorted(tasks, key=lambda t: t.slot),
            labels=labels,
            label_stats=self.label_stats(),
            counters={**dict.fromkeys(COUNTER_NAMES, 0), **{text(n): int(v) for n, v in counters.items()}},
            client_seqs={int(c): int(s) for c, s in clients.items()},
        )

    def import_state(self, state: CurriculumState) -> None:
        """Replace the namespace by ``state`` in one MULTI/EXEC: all of it is written, or none."""
        if len(state.tasks) > state.hypers.num_active_tasks:
            raise StoreError(
                f"state holds {len(state.tasks)} tasks for num_active_tasks={state.hypers.num_active_tasks}"
            )
        k = self.keys
        existing = self._call(lambda: k.fixed + self._scan(k.task_pattern) + self._scan(k.label_pattern))
        pipe = self.client.pipeline(transaction=True)
        if existing:
            pipe.delete(*existing)
        meta: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "hypers": state.hypers.model_dump_json(),
            "created_at": f"{time.time():.3f}",
            "pool_version": state.pool_version + 1,
            "pool_size": len(state.tasks),
            **meta_fields(state.hypers),
        }
        pipe.hset(k.meta, mapping=cast(Mapping[Any, Any], meta))
        counters = {name: state.counters.get(name, 0) for name in COUNTER_NAMES}
        pipe.hset(k.counters, mapping=cast(Mapping[Any, Any], counters))
        if state.labels:
            pipe.hset(k.labels, mapping={str(h): v for h, v in state.labels.items()})
        if state.client_seqs:
            pipe.hset(k.clients, mapping={str(c): s for c, s in state.client_seqs.items()})
        records = np.zeros(state.hypers.num_active_tasks, dtype=SNAPSHOT_DTYPE)
        for slot, task in enumerate(sorted(state.tasks, key=lambda t: t.slot)):
            fields = task.model_dump(exclude={"task_id", "label"})
            fields["slot"] = slot
            pipe.hset(k.task(task.task_id), mapping={n: format_field(v) for n, v in fields.items()})
            records[slot] = tuple(float(getattr(task, name)) for name in SNAPSHOT_FIELDS)
        pipe.set(k.scores, records.tobytes())
        for h, stats in state.label_stats.items():
            pipe.hset(k.label(h), mapping={n: format_field(v) for n, v in stats.model_dump().items()})
        self._call(pipe.execute)

    def touch(self, ttl_s: float) -> None:
        """Refresh the expiry of every key of the namespace (names derived, never SCANned); new task and
        label keys get the same expiry from the scripts, which read ``ttl_ms`` from meta."""
        k = self.keys
        ttl_ms = int(ttl_s * 1000)
        ids = self.snapshot().task_ids.tolist()
        hashes = list(self.labels())
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(k.meta, "ttl_ms", ttl_ms)
        for key in [k.meta, k.counters, k.scores, k.labels, k.clients, *map(k.task, ids), *map(k.label, hashes)]:
            pipe.pexpire(key, ttl_ms)
        self._call(pipe.execute)

    def _scan(self, pattern: str) -> list[str]:
        return [text(key) for key in self.client.scan_iter(match=pattern, count=1000)]

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        if self._client_obj is not None and self._pid == os.getpid():
            self._client_obj.close()
        self._client_obj = None
        self._scripts = {}
        self._runners = {}


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def format_field(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def task_record(task_id: int, raw: dict[str, str]) -> TaskRecord:
    values: dict[str, Any] = {
        n: (int(v) if n in INT_TASK_FIELDS else float(v)) for n, v in raw.items() if n != "label"
    }
    return TaskRecord(task_id=task_id, label=raw.get("label", ""), **values)


def label_stats_from(row: dict[bytes, bytes]) -> LabelStats:
    raw = {f.decode(): v.decode() for f, v in row.items()}
    values: dict[str, Any] = {"label": raw.get("label", "")}
    for name in LABEL_STAT_FIELDS:
        if name in raw:
            values[name] = float(raw[name]) if name in ("score_sum", "lp_ema") else int(float(raw[name]))
    return LabelStats(**values)

