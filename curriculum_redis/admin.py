"""Namespace lifecycle and checkpoints: list, drop, snapshot (RDB), export and import (msgpack).

An export file is ``MAGIC`` + the SHA-256 of the payload + a msgpack payload of plain numbers and
strings. Import checks all three, and validates the whole state, before anything is written; the
write itself is one MULTI/EXEC transaction. Nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import redis
from pydantic import ValidationError

from curriculum_redis.config import MismatchPolicy
from curriculum_redis.errors import CheckpointError, StoreError
from curriculum_redis.state import SCHEMA_VERSION, STATE_FORMAT, CurriculumState
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore

MAGIC = b"CRDSEXP1"
DIGEST_SIZE = 32


@dataclass(frozen=True)
class NamespaceInfo:
    namespace: str
    tasks: int
    completions: int
    schema_version: int
    created_at: float


@dataclass(frozen=True)
class SnapshotInfo:
    path: str
    size_bytes: int | None
    seconds: float


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


def list_namespaces(client: redis.Redis) -> list[NamespaceInfo]:
    """Every namespace on the server, found by its ``{cr:<ns>}:meta`` or ``{cr:<ns>}:stage:config`` key."""
    names: set[str] = set()
    for pattern, suffix in (("{cr:*}:meta", "}:meta"), ("{cr:*}:stage:config", "}:stage:config")):
        for raw_key in client.scan_iter(match=pattern, count=1000):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            names.add(key[len("{cr:") : -len(suffix)])
    infos = []
    for namespace in sorted(names):
        keys = NamespaceKeys(namespace)
        meta = client.hmget(keys.meta, ["schema_version", "created_at", "pool_size"])
        infos.append(
            NamespaceInfo(
                namespace=namespace,
                tasks=int(meta[2] or 0),
                completions=int(client.hget(keys.counters, "num_completed") or 0),
                schema_version=int(meta[0] or 0),
                created_at=float(meta[1] or 0.0),
            )
        )
    return infos


def drop_namespace(client: redis.Redis, namespace: str) -> int:
    """Delete one namespace's keys (found by SCAN on its hash tag, never FLUSHDB); returns how many."""
    keys = list(client.scan_iter(match=NamespaceKeys(namespace).pattern, count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start : start + 500])
    return len(keys)


def _persistence(client: redis.Redis) -> dict[str, Any]:
    return dict(client.info("persistence"))


def snapshot(client: redis.Redis, timeout_s: float = 60.0) -> SnapshotInfo:
    """Write an RDB snapshot with BGSAVE and wait until it is on disk.

    Waits on ``INFO persistence`` (a save in progress, then the count of saves), not on LASTSAVE, whose
    one-second resolution can't tell two saves apart.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    before = _persistence(client)
    saves_before = int(before.get("rdb_saves", -1))
    while True:
        try:
            client.bgsave()
            break
        except redis.exceptions.ResponseError as exc:
            if "in progress" not in str(exc):
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
    except (ValueError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"{source} does not hold valid msgpack: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{source} is msgpack but not a curriculum_redis state")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(
            f"{source} has schema_version {raw.get('schema_version')!r}; this version reads {SCHEMA_VERSION}"
        )
    try:
        return CurriculumState.model_validate(raw)
    except ValidationError as exc:
        raise CheckpointError(f"{source} holds an invalid state: {exc}") from exc


def export_namespace(client: redis.Redis, namespace: str, path: str | Path) -> ExportInfo:
    """Write one namespace to ``path`` (written to a temporary file first, then renamed)."""
    state = RedisStore(client, namespace).export_state()
    data = encode_state(state)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return ExportInfo(str(target), namespace, len(state.tasks), len(state.labels), len(data))


def import_namespace(
    client: redis.Redis,
    namespace: str,
    path: str | Path,
    on_mismatch: MismatchPolicy = "error",
    replace: bool = False,
) -> ImportInfo:
    """Load an export into ``namespace``. Refuses an existing namespace unless ``replace`` is set, and
    one whose hyperparameters differ unless ``on_mismatch`` allows it."""
    from curriculum_redis.curriculum import reconcile_hypers

    state = decode_state(Path(path).read_bytes(), source=str(path))
    store = RedisStore(client, namespace)
    existing = client.hget(store.keys.meta, "hypers")
    if existing is not None:
        if not replace:
            raise StoreError(f"namespace {namespace!r} already exists: pass replace=True to overwrite it")
        stored = CurriculumState.model_fields["hypers"].annotation
        assert stored is not None
        current = store.attach(state.hypers)
        if current is not None:
            reconcile_hypers(current, state.hypers, on_mismatch, f"namespace {namespace!r}")
    store.import_state(state.model_copy(update={"namespace": namespace}))
    return ImportInfo(namespace, len(state.tasks), len(state.labels), existing is not None)
