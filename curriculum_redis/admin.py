"""Namespace lifecycle and checkpoints: list, drop, snapshot (RDB), export and import (msgpack).

Every function takes a ``redis.Redis`` or a ``redis.cluster.RedisCluster``
(:func:`curriculum_redis.store.connection.client_from_url` makes either from a URL). On a cluster, a namespace
lives in one slot: SCANs for it run on the primary owning that slot, listing SCANs every primary.

An export file is ``MAGIC`` + the SHA-256 of the payload + a msgpack payload of plain numbers and
strings. Import checks all three, and validates the whole state, before anything is written; the
write itself is one MULTI/EXEC transaction. Nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import redis
from pydantic import ValidationError
from redis.cluster import RedisCluster

from curriculum_redis.algorithms import STORED_DEFAULT_ALGORITHM
from curriculum_redis.algorithms.sequential import SequentialConfig
from curriculum_redis.config import MismatchPolicy, PoolConfig, reconcile_hypers
from curriculum_redis.errors import CheckpointError, ConfigError, StoreError
from curriculum_redis.integrity import CheckReport as CheckReport  # admin.CheckReport
from curriculum_redis.integrity import check_namespace as check_namespace  # admin.check_namespace
from curriculum_redis.state import SCHEMA_VERSION, STATE_FORMAT, CurriculumState
from curriculum_redis.state_checks import semantic_problem
from curriculum_redis.store.connection import Client
from curriculum_redis.store.keys import NAMESPACE_FORBIDDEN, NamespaceKeys, validate_namespace
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.transfer import replace_namespace

MAGIC = b"CRDSEXP1"
DIGEST_SIZE = 32


@dataclass(frozen=True)
class NamespaceInfo:
    """One namespace as :func:`list_namespaces` finds it. ``kind`` is its algorithm (``learning_progress``,
    ..., ``sequential``), or ``stage`` for a stage curriculum whose meta holds no hyperparameters (which
    stays readable by ``stage``). A stage curriculum's ``stage`` is the current stage's index
    (of ``num_stages``) and ``episodes`` its recorded episodes; a task pool's ``episodes`` are its
    ``num_completed``. ``completions`` repeats ``episodes`` for the readers that know that name."""

    namespace: str
    tasks: int
    completions: int
    schema_version: int
    created_at: float
    kind: str = STORED_DEFAULT_ALGORITHM
    episodes: int = 0
    stage: int | None = None
    num_stages: int | None = None


class NamespaceExistsError(StoreError):
    """:func:`import_namespace` was asked to write into a namespace that exists, without ``replace``."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(f"namespace {namespace!r} already exists: pass replace=True to overwrite it")


@dataclass(frozen=True)
class SnapshotInfo:
    """Where an RDB snapshot was written. On a cluster, ``node`` is the primary this one describes and
    ``nodes`` holds one entry per primary (each primary writes its own file, holding only its slots)."""

    path: str
    size_bytes: int | None
    seconds: float
    node: str = ""
    nodes: tuple[SnapshotInfo, ...] = ()


@dataclass(frozen=True)
class ExportInfo:
    path: str
    namespace: str
    tasks: int
    labels: int
    size_bytes: int


@dataclass(frozen=True)
class ImportInfo:
    namespace: str
    tasks: int
    labels: int
    replaced: bool


def list_namespaces(client: Client) -> list[NamespaceInfo]:
    """Every namespace on the server (on a cluster: on every primary), found by its ``{cr:<ns>}:meta`` or
    ``{cr:<ns>}:stage:config`` key."""
    names: set[str] = set()
    for pattern, suffix in (("{cr:*}:meta", "}:meta"), ("{cr:*}:stage:config", "}:stage:config")):
        for raw_key in client.scan_iter(match=pattern, count=1000):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            name = key[len("{cr:") : -len(suffix)]
            if not set(name) & NAMESPACE_FORBIDDEN:  # a foreign key (e.g. ``{cr:a}:zzz}:meta``), not a namespace
                names.add(name)
    return [_namespace_info(client, namespace) for namespace in sorted(names)]


def _namespace_info(client: Client, namespace: str) -> NamespaceInfo:
    keys = NamespaceKeys(namespace)
    meta = client.hmget(keys.meta, ["schema_version", "created_at", "pool_size", "algorithm"])
    raw_stages = client.hget(keys.stage_config, "stages")
    stage: dict[str, Any] = {}
    if raw_stages is not None:  # a stage curriculum: where it stands, whatever else the namespace holds
        index, episodes, created_at = client.hmget(keys.stage, ["index", "recorded_episodes", "created_at"])
        stage = {
            "stage": int(index or 0),
            "num_stages": len(json.loads(raw_stages)),
            "episodes": int(episodes or 0),
            "created_at": float(created_at or 0.0),
        }
    if meta[0] is None and meta[3] is None:
        episodes = stage.get("episodes", 0)
        return NamespaceInfo(namespace, tasks=0, completions=episodes, schema_version=0, kind="stage", **stage)
    completed = int(client.hget(keys.counters, "num_completed") or 0)
    algorithm = meta[3].decode() if isinstance(meta[3], bytes) else meta[3]
    found = {"episodes": completed, "created_at": float(meta[1] or 0.0), **stage}
    return NamespaceInfo(
        namespace=namespace,
        tasks=int(meta[2] or 0),
        completions=found["episodes"],
        schema_version=int(meta[0] or 0),
        kind=str(algorithm or STORED_DEFAULT_ALGORITHM),
        **found,
    )


def namespace_kinds(client: Client, namespace: str) -> frozenset[str]:
    """What ``namespace`` holds: ``"curriculum"`` (hyperparameters the readers understand) and/or
    ``"stage"`` (a stage curriculum's track); empty when nothing of it is on the server."""
    keys = NamespaceKeys(namespace)
    found = {"curriculum"} if client.exists(keys.meta) else set()
    if client.exists(keys.stage_config):
        found.add("stage")
    return frozenset(found)


def reset_stage(client: Client, namespace: str, index: int) -> int:
    """Move the stage curriculum in ``namespace`` to stage ``index`` (every env follows at its next
    reset); returns the new version. Raises :class:`ConfigError` for an index that is not a stage."""
    store = RedisStore(client, namespace)
    try:
        hypers = store.read_hypers()
        if not isinstance(hypers, SequentialConfig):
            raise StoreError(f"namespace {namespace!r} holds no stage curriculum")
        last = len(hypers.stages) - 1
        if not 0 <= index <= last:
            raise ConfigError(f"stage {index} does not exist (namespace {namespace!r} has stages 0..{last})")
        return store.reset_stage(index).version
    finally:
        if store.client is not client:
            store.close()


def drop_namespace(client: Client, namespace: str) -> int:
    """Delete one namespace's keys (found by SCAN on its hash tag, never FLUSHDB); returns how many."""
    keys = NamespaceKeys(namespace)

    def unlink(pipe: Any, existing: list[str]) -> None:
        for start in range(0, len(existing), 500):
            pipe.unlink(*existing[start : start + 500])

    # One transaction, retried if a task was created meanwhile: workers see the namespace whole or gone.
    return sum(replace_namespace(client, keys, "the server", [keys.pattern], unlink))


def _persistence(client: redis.Redis) -> dict[str, Any]:
    return dict(client.info("persistence"))


def snapshot(client: Client, timeout_s: float = 60.0, namespace: str | None = None) -> SnapshotInfo:
    """Write an RDB snapshot with BGSAVE and wait until it is on disk.

    On a cluster, every primary saves (one after the other; each file holds that primary's slots, so a
    namespace is whole in its owner's file); the result describes the primary owning ``namespace``
    (the first primary by address when none is given) and lists every primary in ``nodes``.

    Waits on ``INFO persistence`` (a save in progress, then the count of saves), not on LASTSAVE, whose
    one-second resolution can't tell two saves apart.

    Plain ``BGSAVE``, never ``BGSAVE SCHEDULE`` (redis-py's ``bgsave()`` default): a scheduled save has not
    started when the reply comes, so on servers without ``rdb_saves`` (Redis < 7) "no save in progress"
    would be read as "done" before anything was written. While another child (a save, an AOF rewrite)
    runs, the BGSAVE is retried until the server accepts it.
    """
    if isinstance(client, RedisCluster):
        return _snapshot_cluster(client, timeout_s, namespace)
    started = time.monotonic()
    deadline = started + timeout_s
    before = _persistence(client)
    saves_before = int(before.get("rdb_saves", -1))
    while True:
        try:
            client.bgsave(schedule=False)
            break
        except redis.exceptions.ResponseError as exc:
            message = str(exc)
            if "in progress" not in message and "child process is active" not in message:
                raise StoreError(f"BGSAVE refused: {exc}") from exc
            if time.monotonic() > deadline:
                raise StoreError(f"BGSAVE still blocked by another save after {timeout_s} s") from exc
            time.sleep(0.05)
    while True:
        info = _persistence(client)
        done = not int(info.get("rdb_bgsave_in_progress", 0))
        if done and (saves_before < 0 or int(info.get("rdb_saves", 0)) > saves_before):
            break
        if time.monotonic() > deadline:
            raise StoreError(f"BGSAVE did not finish within {timeout_s} s")
        time.sleep(0.02)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise StoreError(f"BGSAVE failed (rdb_last_bgsave_status={info.get('rdb_last_bgsave_status')})")
    directory = client.config_get("dir").get("dir", "")
    filename = client.config_get("dbfilename").get("dbfilename", "dump.rdb")
    path = os.path.join(str(directory), str(filename))
    size = os.path.getsize(path) if os.path.exists(path) else None
    return SnapshotInfo(path=path, size_bytes=size, seconds=time.monotonic() - started)


def encode_state(state: CurriculumState) -> bytes:
    payload = msgpack.packb(state.model_dump(mode="json"), use_bin_type=True)
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode_state(data: bytes, source: str = "the file") -> CurriculumState:
    """Parse and fully validate an export; raises CheckpointError saying what is wrong with it."""
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{source} is not a curriculum_redis export (its first bytes are {data[:8]!r})")
    digest, payload = data[len(MAGIC) : len(MAGIC) + DIGEST_SIZE], data[len(MAGIC) + DIGEST_SIZE :]
    if len(digest) < DIGEST_SIZE or hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{source} is truncated or corrupt: its checksum does not match its content")
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # TypeError: a map key msgpack can decode but Python can't hash (an array used as a key).
        raise CheckpointError(f"{source} does not hold valid msgpack: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{source} is msgpack but not a curriculum_redis state")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(
            f"{source} has schema_version {raw.get('schema_version')!r}; this version reads {SCHEMA_VERSION}"
        )
    try:
        state = CurriculumState.model_validate(raw)
    except ValidationError as exc:
        raise CheckpointError(f"{source} holds an invalid state: {exc}") from exc
    problem = inconsistency(state)
    if problem:
        raise CheckpointError(f"{source} holds an inconsistent state: {problem}")
    return state


def inconsistency(state: CurriculumState) -> str | None:
    """What makes a schema-valid state unfit to import (the checks the scripts would otherwise trip
    over later), or None. A real export always passes; a hand-made or damaged one may not."""
    capacity = state.hypers.num_active_tasks if isinstance(state.hypers, PoolConfig) else 0
    if len(state.tasks) > capacity:
        return f"{len(state.tasks)} tasks for num_active_tasks={capacity}"
    seen: set[int] = set()
    for task in state.tasks:
        if task.task_id in seen:
            return f"task {task.task_id} appears twice"
        seen.add(task.task_id)
        if state.labels.get(task.label_hash) != task.label:
            return f"task {task.task_id} has label {task.label!r}, but labels[{task.label_hash}] is " + repr(
                state.labels.get(task.label_hash)
            )
        for name, value in task.model_dump().items():
            if isinstance(value, float) and not math.isfinite(value):
                return f"task {task.task_id} has {name}={value!r}"
    for h, stats in state.label_stats.items():
        if h not in state.labels:
            return f"label aggregates for label hash {h}, which has no label string"
        for name, value in stats.model_dump().items():
            if isinstance(value, float) and not math.isfinite(value):
                return f"label {stats.label!r} has {name}={value!r}"
    return semantic_problem(state)


def _snapshot_cluster(client: RedisCluster, timeout_s: float, namespace: str | None) -> SnapshotInfo:
    started = time.monotonic()
    primaries = sorted(client.get_primaries(), key=lambda n: (n.host, n.port))  # type: ignore[no-untyped-call]
    infos = []
    for node in primaries:
        remaining = max(1.0, timeout_s - (time.monotonic() - started))
        info = snapshot(client.get_redis_connection(node), remaining)
        infos.append(SnapshotInfo(info.path, info.size_bytes, info.seconds, node=f"{node.host}:{node.port}"))
    chosen = infos[0]
    if namespace is not None:
        owner = client.get_node_from_key(NamespaceKeys(namespace).meta)  # type: ignore[no-untyped-call]
        chosen = infos[primaries.index(owner)]
    return SnapshotInfo(chosen.path, chosen.size_bytes, time.monotonic() - started, chosen.node, tuple(infos))


def wait_for_replicas(client: Client, namespace: str, replicas: int = 1, timeout_ms: int = 1000) -> int:
    """Wait until ``replicas`` replicas of the primary holding ``namespace`` have every write that primary
    applied before this call, or ``timeout_ms`` passed; returns how many replicas have them.

    ``WAIT`` counts only the writes of the connection it runs on, so this writes a probe key in the
    namespace's slot (it expires after a minute) and WAITs on that same connection: replication is one
    ordered stream, so a replica holding the probe holds everything before it. This bounds what a
    failover can lose at that moment; replication stays asynchronous for the writes that follow.
    """
    probe = NamespaceKeys(namespace).prefix + ":replication-probe"
    node_client: redis.Redis
    if isinstance(client, RedisCluster):
        node_client = client.get_redis_connection(client.get_node_from_key(probe))  # type: ignore[no-untyped-call]
    else:
        node_client = client
    pipe = node_client.pipeline(transaction=False)
    pipe.set(probe, "1", px=60_000)
    pipe.wait(replicas, timeout_ms)
    _, acknowledged = pipe.execute()
    return int(acknowledged)


def export_namespace(client: Client, namespace: str, path: str | Path) -> ExportInfo:
    """Write one namespace to ``path`` (written to a temporary file first, then renamed)."""
    state = RedisStore(client, namespace).export_state()
    data = encode_state(state)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return ExportInfo(str(target), namespace, len(state.tasks), len(state.labels), len(data))


def import_namespace(
    client: Client,
    namespace: str,
    path: str | Path,
    on_mismatch: MismatchPolicy = "error",
    replace: bool = False,
) -> ImportInfo:
    """Load an export into ``namespace``. Refuses an existing namespace unless ``replace`` is set, and
    one whose hyperparameters differ unless ``on_mismatch`` allows it."""
    validate_namespace(namespace)
    state = decode_state(Path(path).read_bytes(), source=str(path))
    store = RedisStore(client, namespace)
    existing = store.client.hget(store.keys.meta, "hypers")  # the primary (the store's client never reads a replica)
    if existing is not None:
        if not replace:
            raise NamespaceExistsError(namespace)
        current = store.attach(state.hypers)
        if current is not None:
            reconcile_hypers(current, state.hypers, on_mismatch, f"namespace {namespace!r}")
    store.import_state(state.model_copy(update={"namespace": namespace}))
    return ImportInfo(namespace, len(state.tasks), len(state.labels), existing is not None)


def load_scripts(client: Client) -> dict[str, str]:
    """Load every Lua script the library runs and return their SHA1s by name: the admin step for
    workers whose ACL allows EVALSHA but neither EVAL nor SCRIPT LOAD (so they cannot run arbitrary Lua).
    Run it again after a restart, a failover or SCRIPT FLUSH: the script cache is not persisted."""
    from curriculum_redis.store.scripts import every_source  # kept local: admin.py imports are shared

    return {name: str(client.script_load(source)) for name, source in every_source().items()}
