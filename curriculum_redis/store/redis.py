"""The store protocol on Redis: the curriculum's shared state, written only by the Lua scripts in ``lua/``.

No client-side lock exists: every write is one script call, atomic on the server. The connection is
made lazily and re-made in a forked or unpickled process; what crosses process boundaries is how to
connect (a URL, connection kwargs or a cluster's node addresses), never a socket.

Redis Cluster: every key of a namespace carries the hash tag ``{cr:<ns>}``, so a namespace lives in one
slot and every script, transaction and pipeline of the store runs on the primary owning that slot;
namespaces spread over the primaries. Pass a ``redis.cluster.RedisCluster`` or a URL with
``?cluster=true``. Replica reads (opt-in, see :mod:`~curriculum_redis.store.replica`) serve only the score
snapshot and the statistics; every write, and every read a write depends on, goes to the primary.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

from curriculum_redis.algorithms import STORED_DEFAULT_ALGORITHM, algorithm_of, get_algorithm
from curriculum_redis.config import AlgorithmConfig, PoolConfig, parse_config
from curriculum_redis.errors import ScriptError, StoreError
from curriculum_redis.state import SCHEMA_VERSION, CurriculumState, LabelStats, TaskRecord
from curriculum_redis.store import transfer
from curriculum_redis.store.base import (
    Eviction,
    EvictionOutcome,
    OutcomeBatch,
    RecordResult,
    ScoreSnapshot,
    current_counters,
)
from curriculum_redis.store.chunks import SNAPSHOT_CHUNK_BYTES, SNAPSHOT_FIRST_BYTES, read_pool
from curriculum_redis.store.connection import Client, ConnectionSpec, map_errors, text
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.replica import REPLICA_ERRORS, ReplicaReads
from curriculum_redis.store.scripts import ScriptSet
from curriculum_redis.store.stages import RedisStages, is_stages
from curriculum_redis.store.transfer import FENCE_MS, task_record

__all__ = ["RedisStore", "meta_fields"]

T = TypeVar("T")
CREATE_CHUNK = 64
"""Tasks per create_tasks script call: Redis runs nothing else during a script, and one call costs about
15-50 µs per task (README, Performance), so a pool of any legal size is filled in calls of a few ms."""


def meta_fields(hypers: PoolConfig) -> dict[str, str]:
    """The meta fields the scripts read, as plain fields readable in redis-cli: the algorithm's name and
    hyperparameters, the success threshold, the capacity and the algorithm's task fields."""
    algorithm = algorithm_of(hypers)
    fields = algorithm.meta_fields(hypers)
    fields["algorithm"] = algorithm.name
    fields["success_threshold"] = repr(float(hypers.success_threshold))
    fields["capacity"] = str(hypers.num_active_tasks)
    fields["fields"] = ",".join(algorithm.stored_fields())
    return fields


class RedisStore(RedisStages):
    """The store protocol on Redis (standalone, replicated or cluster).

    Args:
        client: a ``redis.Redis`` or a ``redis.cluster.RedisCluster``. A client that decodes responses, or a
            cluster client routing reads to replicas, is replaced by a twin that does neither (same nodes
            and settings): scores arrive as packed bytes, and reads a write depends on must see the primary.
        namespace: the curriculum's namespace (the ``{cr:<ns>}`` hash tag of its keys).
        replica_url: a standalone primary's replica to read the score snapshot and statistics from.
        read_from_replicas: on a cluster, read them from a replica of the namespace's slot (default: on
            when ``client`` was made with ``read_from_replicas`` or a ``load_balancing_strategy``).
    """

    _client_obj: Client | None

    def __init__(
        self,
        client: Client,
        namespace: str,
        *,
        replica_url: str | None = None,
        read_from_replicas: bool | None = None,
    ) -> None:
        self._namespace = namespace
        self.keys = NamespaceKeys(namespace)
        self._spec, client = ConnectionSpec.of_client(client, replica_url, read_from_replicas)
        self._reset_connection()
        self._client_obj = client

    @classmethod
    def from_url(
        cls,
        url: str,
        namespace: str,
        *,
        cluster: bool | None = None,
        replica_url: str | None = None,
        read_from_replicas: bool | None = None,
        **client_kwargs: Any,
    ) -> RedisStore:
        """A store that connects lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        ``cluster``, ``replica_url`` and ``read_from_replicas`` can also be given in the URL's query
        (``?cluster=true``, ``?replica=host:port``, ``?read_from_replicas=true``, see :class:`StoreURL`),
        which is how ``CurriculumConfig(redis_url=...)`` asks for them; keyword arguments win.
        ``client_kwargs`` go to ``redis.Redis.from_url`` or ``RedisCluster.from_url``.
        """
        store = cls.__new__(cls)
        store._namespace = namespace
        store.keys = NamespaceKeys(namespace)
        store._spec = ConnectionSpec.of_url(url, cluster, replica_url, read_from_replicas, client_kwargs)
        store._reset_connection()
        return store

    def _reset_connection(self) -> None:
        """Forget every connection (without closing: in a forked child they are the parent's)."""
        self._client_obj = None
        self._replicas: ReplicaReads | None = None
        self._scripts: ScriptSet | None = None
        self._pid = os.getpid()
        self._attached_hypers: AlgorithmConfig | None = None
        self._algorithm_name: str | None = None
        self._segments: list[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"namespace": self._namespace, "spec": self._spec, "attached_hypers": self._attached_hypers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._namespace = state["namespace"]
        self.keys = NamespaceKeys(self._namespace)
        self._spec = state["spec"]
        self._reset_connection()
        self._attached_hypers = state["attached_hypers"]

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def where(self) -> str:
        """Where the data lives, without credentials."""
        return self._spec.where

    @property
    def is_cluster(self) -> bool:
        return self._spec.cluster

    @property
    def client(self) -> Client:
        """The connection (to the primaries), made on first use and re-made in a forked child."""
        if self._client_obj is None or self._pid != os.getpid():
            attached = self._attached_hypers
            self._reset_connection()
            self._attached_hypers = attached
            self._client_obj = self._spec.connect()
        return self._client_obj

    @property
    def scripts(self) -> ScriptSet:
        client = self.client  # first: a forked child drops the parent's scripts with its connections
        if self._scripts is None:
            self._scripts = ScriptSet(client)
        return self._scripts

    # -- replica reads ---------------------------------------------------------------------------

    @property
    def replica_address(self) -> str | None:
        """``host:port`` of the replica the snapshot and statistics are read from, or None (the primary)."""
        return None if self._reader() is None or self._replicas is None else self._replicas.address

    def _reader(self) -> redis.Redis | None:
        """A client of a replica for the read-only snapshot and statistics; None means read the primary."""
        spec = self._spec
        if not spec.read_from_replicas:
            return None
        client = self.client  # first, so a forked child drops the parent's reader with its connections
        if self._replicas is None:
            url_kwargs = spec.client_kwargs if spec.url is not None else {}
            self._replicas = ReplicaReads(self.keys, spec.replica_url, url_kwargs)
        return self._replicas.reader(client)

    def _read(self, fn: Callable[[Client], T]) -> T:
        """``fn`` on the replica when replica reads are on and the replica answers, else on the primary."""
        reader = self._reader()
        if reader is not None and self._replicas is not None:
            try:
                return fn(reader)
            except REPLICA_ERRORS as exc:
                self._replicas.drop(exc)  # down, failed over, or no longer serving the slot (MOVED)
        return self._call(lambda: fn(self.client))

    # -- scripts ---------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """``fn()`` with redis errors mapped to ours (see :func:`~curriculum_redis.store.connection.map_errors`)."""
        with map_errors(lambda: self.where):
            return fn()

    def _invoke(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self.scripts(name, keys, args)

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script; if the namespace vanished (a Redis restart without persistence, a drop),
        attach again with the last hyperparameters and retry once."""
        try:
            with map_errors(lambda: self.where):
                return self.scripts(name, keys, args)
        except ScriptError as exc:
            if not str(exc).startswith(("CR_NO_NAMESPACE", "CR_NO_STAGE")) or self._attached_hypers is None:
                raise
            self.attach(self._attached_hypers)
            with map_errors(lambda: self.where):
                return self.scripts(name, keys, args)

    def _pool_script(self, name: str, keys: Sequence[str], args: Sequence[Any], *, wait_fence: bool = True) -> Any:
        """A pool script that reads or writes records: ``keys`` followed by the ``:scores`` segments after
        the first (include_scores.lua). When the namespace's capacity is not the one this store knew (an
        import replaced it), the script says CR_SEGMENTS before writing anything: learn it and retry once.
        While an admin drops or replaces the namespace, creating and evicting say CR_FENCED: wait, then
        retry (the fence outlives a dead admin by at most ``FENCE_MS``), unless ``wait_fence`` is off."""
        learnt = False
        waited, attempt = 0.0, 0
        while True:
            try:
                return self._run(name, [*keys, *self._score_segments()[1:]], args)
            except ScriptError as exc:
                if str(exc).startswith("CR_SEGMENTS") and not learnt:
                    self._segments, learnt = None, True
                elif str(exc).startswith("CR_FENCED") and wait_fence and waited < FENCE_MS / 1000:
                    attempt += 1
                    pause = min(0.05, 0.002 * attempt)  # a drop or replace takes milliseconds (fence_namespace.lua)
                    time.sleep(pause)
                    waited += pause
                else:
                    raise

    def _score_segments(self) -> list[str]:
        """Every ``:scores`` segment key of the namespace's capacity (meta's, read once)."""
        if self._segments is None:
            raw = self._call(lambda: self.client.hget(self.keys.meta, "capacity"))
            hypers = self._attached_hypers
            capacity = int(raw) if raw is not None else hypers.num_active_tasks if isinstance(hypers, PoolConfig) else 1
            self._segments = self.keys.scores_segments(capacity)
        return self._segments

    def _read_script(self, name: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """A script on the pooled client: a read, or an attach, never waits for the writer's connection."""
        with map_errors(lambda: self.where):
            return self.scripts(name, keys, args, read=True)

    def _namespace_algorithm(self) -> str:
        """The algorithm this store runs: the attached one, else the namespace's (read once)."""
        if self._attached_hypers is not None:
            return self._attached_hypers.algorithm
        if self._algorithm_name is None:
            raw = self._call(lambda: self.client.hget(self.keys.meta, "algorithm"))
            if raw is None:
                return STORED_DEFAULT_ALGORITHM  # no namespace yet: the script says CR_NO_NAMESPACE
            self._algorithm_name = text(raw)
        return self._algorithm_name

    # -- protocol --------------------------------------------------------------------------------

    def attach(self, hypers: AlgorithmConfig) -> AlgorithmConfig | None:
        if is_stages(hypers):
            return self._attach_stages(hypers)  # type: ignore[arg-type]
        if not isinstance(hypers, PoolConfig):
            raise StoreError(f"the {hypers.algorithm} algorithm keeps neither a task pool nor stages")
        args: list[Any] = [SCHEMA_VERSION, hypers.model_dump_json(), f"{time.time():.3f}"]
        for name, value in meta_fields(hypers).items():
            args += [name, value]
        stored = self._read_script("attach", [self.keys.meta, self.keys.scores], args)
        self._attached_hypers = hypers
        self._segments = None
        return self._parse_hypers(stored) if stored else None

    def _parse_hypers(self, stored: bytes | str) -> AlgorithmConfig:
        try:
            return parse_config(stored)
        except ValueError as exc:
            raise StoreError(f"namespace {self._namespace!r} holds unreadable hyperparameters: {exc}") from exc

    def read_hypers(self) -> AlgorithmConfig | None:
        stored = self._call(lambda: self.client.hget(self.keys.meta, "hypers"))
        return self.read_stages() if stored is None else self._parse_hypers(stored)

    def register_client(self) -> int:
        # Random, not a server counter: ids stay unique even if the namespace is wiped and recreated.
        return secrets.randbits(52) + 1

    def create_tasks(self, tasks: Sequence[Any]) -> list[int]:
        """Each chunk of :data:`CREATE_CHUNK` tasks in one atomic call; the script stops at capacity."""
        created: list[int] = []
        for start in range(0, len(tasks), CREATE_CHUNK):
            created += self._create_chunk(tasks[start : start + CREATE_CHUNK])
        return created

    def _create_chunk(self, tasks: Sequence[Any]) -> list[int]:
        k = self.keys
        keys = [k.meta, k.counters, k.scores, k.labels]
        args: list[Any] = [len(tasks)]
        for task in tasks:
            keys += [k.task(task.task_id), k.label(task.label_hash)]
            args += [task.task_id, task.label_hash, task.label]
        return [int(x) for x in self._pool_script("create_tasks", keys, args)]

    def record(self, batch: OutcomeBatch) -> RecordResult:
        if is_stages(self._attached_hypers):
            return self._record_stages(batch)
        k = self.keys
        label_hashes = batch.label_hashes()
        label_index = {h: i + 1 for i, h in enumerate(label_hashes)}
        grouped = batch.by_task()
        keys = [k.meta, k.counters, k.scores, k.clients]
        keys += [k.task(task_id) for task_id in grouped]
        keys += [k.label(h) for h in label_hashes]
        keys += [k.history_labels, k.history]
        args: list[Any] = [batch.client_id, batch.seq, len(grouped), len(label_hashes)]
        for task_id, outcomes in grouped.items():
            args += [task_id, outcomes[0].slot, label_index[outcomes[0].label_hash], len(outcomes)]
            args += [("f" if o.failed else "") + repr(float(o.score)) for o in outcomes]
        for h in label_hashes:
            args += [h, batch.scheduled.get(h, 0)]
        script = f"record_outcomes:{self._namespace_algorithm()}"
        applied, recorded, evicted = self._pool_script(script, keys, args)
        return RecordResult(bool(applied), int(recorded), int(evicted))

    def evict_and_replace(self, eviction: Eviction) -> EvictionOutcome:
        k = self.keys
        victim_hash = self._call(lambda: self.client.hget(k.task(eviction.victim_id), "label_hash"))
        if victim_hash is None:
            return "victim_gone"
        new = eviction.replacement
        keys = [
            k.meta, k.counters, k.scores, k.labels,
            k.task(eviction.victim_id), k.task(new.task_id), k.label(int(victim_hash)), k.label(new.label_hash),
        ]  # fmt: skip
        args = [
            eviction.victim_id, int(victim_hash), new.task_id, new.label_hash, new.label, eviction.reason,
            eviction.min_presentations, repr(float(eviction.max_score)), eviction.min_failures,
        ]  # fmt: skip
        try:
            return text(self._pool_script("evict_and_replace", keys, args, wait_fence=False))  # type: ignore[return-value]
        except ScriptError as exc:
            if str(exc).startswith("CR_FENCED"):
                return "fenced"  # an eviction can wait for the next refresh; sampling must not stall
            raise

    def snapshot(self) -> ScoreSnapshot:
        """The scores of the pool; from a replica when replica reads are on (possibly behind the primary,
        by whole script calls: a replica applies each script's writes atomically)."""
        reader = self._reader()
        if reader is not None and self._replicas is not None:
            raw = self._replicas.snapshot(reader)
            if raw is not None:
                snap = self._from_bytes(*raw)
                if snap.size:
                    return snap
        return self._primary_snapshot()

    def _primary_snapshot(self) -> ScoreSnapshot:
        k = self.keys
        version, head, name, clock, total = self._read_script(
            "read_snapshot", [k.meta, k.scores, k.counters], [SNAPSHOT_FIRST_BYTES]
        )
        blob = self._call(lambda: read_pool(self.client, k, bytes(head), int(total), SNAPSHOT_CHUNK_BYTES))
        return self._from_bytes(int(version), blob, name, clock)

    @staticmethod
    def _from_bytes(version: int, blob: bytes, name: bytes | str | None, clock: Any) -> ScoreSnapshot:
        algorithm = get_algorithm(text(name) if name else STORED_DEFAULT_ALGORITHM)
        return ScoreSnapshot.from_bytes(version, blob, algorithm.dtype(), int(clock or 0))

    def read_task(self, task_id: int) -> TaskRecord | None:
        flat = self._read_script("read_task", [self.keys.task(task_id), self.keys.labels])
        if not flat:
            return None
        return task_record(task_id, {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)})

    def labels(self) -> dict[int, str]:
        raw = self._read(lambda client: client.hgetall(self.keys.labels))
        return {int(h): text(label) for h, label in raw.items()}

    def label_stats(self) -> dict[int, LabelStats]:
        return self._read(lambda client: transfer.label_stats_on(client, self.keys))

    def counters(self) -> dict[str, int]:
        raw = self._read(lambda client: client.hgetall(self.keys.counters))
        return current_counters({text(name): int(value) for name, value in raw.items()})

    def export_state(self) -> CurriculumState:
        """A consistent copy of the namespace (see :func:`~curriculum_redis.store.transfer.export_state`)."""
        if is_stages(self._attached_hypers if self._attached_hypers is not None else self.read_hypers()):
            return self._export_stages()
        return transfer.export_state(self._call(lambda: self.client), self.keys, self._primary_snapshot, self.where)

    def import_state(self, state: CurriculumState) -> None:
        """Replace the namespace by ``state`` in one MULTI/EXEC: all of it is written, or none."""
        if is_stages(state.hypers):
            return self._import_stages(state)
        client = self._call(lambda: self.client)
        transfer.import_state(client, self.keys, state, meta_fields, self.where)

    def touch(self, ttl_s: float) -> None:
        """Refresh the expiry of every key of the namespace (names derived, never SCANned); new task and
        label keys get the same expiry from the scripts, which read ``ttl_ms`` from meta."""
        k = self.keys
        ttl_ms = int(ttl_s * 1000)
        ids = self._primary_snapshot().task_ids.tolist()
        hashes = [int(h) for h in self._call(lambda: self.client.hkeys(k.labels))]
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(k.meta, "ttl_ms", ttl_ms)
        keys = [k.meta, k.counters, *self._score_segments(), k.labels, k.clients, k.history, k.history_labels]
        for key in [*keys, *map(k.task, ids), *map(k.label, hashes)]:
            pipe.pexpire(key, ttl_ms)
        self._call(pipe.execute)

    def close(self) -> None:
        if self._pid == os.getpid():
            if self._scripts is not None:
                self._scripts.close()
            if self._client_obj is not None:
                self._client_obj.close()
            if self._replicas is not None:
                self._replicas.close()
        self._client_obj = None
        self._replicas = None
        self._scripts = None
