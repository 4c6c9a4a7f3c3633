"""Integrity of a pool namespace on Redis: the server's eviction policy, and the invariants between its keys.

A key lost to eviction or by hand leaves the others inconsistent (a pool size without tasks, task hashes
outside the pool); the scripts refuse to write over such holes (``CR_CORRUPT``), and :func:`check_namespace`
finds them and repairs what the remaining keys determine. The packed ``:scores`` records (in segments of
1 MiB, see store.keys) are the source of truth for the pool: every other count is derived from them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from curriculum_redis.algorithms import STORED_DEFAULT_ALGORITHM, get_algorithm
from curriculum_redis.errors import EvictionPolicyError, NamespaceNotFoundError
from curriculum_redis.store.base import ScoreSnapshot
from curriculum_redis.store.connection import Client, text
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import INT_TASK_FIELDS, RECORD_SIZE, SEGMENT_BYTES
from curriculum_redis.store.transfer import scan_namespace

__all__ = ["CheckReport", "add_check_command", "check_eviction_policy", "check_namespace", "eviction_policy"]

log = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"


def eviction_policy(client: Client) -> str | None:
    """The server's ``maxmemory-policy`` (from INFO, which a confined user may run where CONFIG is denied);
    None when the server does not say."""
    try:
        info: Any = client.info("memory")
    except redis.exceptions.ResponseError:  # INFO denied by an ACL: nothing to check with
        return None
    if isinstance(info, dict) and "maxmemory_policy" not in info:  # a cluster: one reply per node
        policies = {str(v.get("maxmemory_policy")) for v in info.values() if isinstance(v, dict)}
        risky = sorted(p for p in policies if p != SAFE_POLICY)
        return risky[0] if risky else (SAFE_POLICY if policies else None)
    return str(info.get("maxmemory_policy")) if isinstance(info, dict) else None


def may_evict(policy: str | None, ttl: bool) -> bool:
    """``allkeys-*`` may evict any key; ``volatile-*`` only keys with an expiry, which ours have with a TTL."""
    if policy is None or policy == SAFE_POLICY:
        return False
    return policy.startswith("allkeys") or ttl


def check_eviction_policy(client: Client, where: str, ttl: bool, on_evicting: Literal["error", "warn"]) -> None:
    """Refuse (or warn about) a server that may evict a namespace's keys: a lost key corrupts it for good."""
    policy = eviction_policy(client)
    if not may_evict(policy, ttl):
        return
    message = (
        f"{where} has maxmemory-policy {policy}, which may evict this curriculum's keys and corrupt it: set "
        "maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction), or use a server of its own"
    )
    if on_evicting == "error":
        raise EvictionPolicyError(message + " (on_evicting_server='warn' accepts the risk)")
    log.warning("%s", message)


@dataclass
class CheckReport:
    """What :func:`check_namespace` found, and what it repaired (when asked to)."""

    namespace: str
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_namespace(client: Client, namespace: str, repair: bool = False) -> CheckReport:
    """Verify a pool namespace's invariants: pool size = occupied slots; each occupied slot's task hash
    exists with that slot and label hash; each label's ``active`` = its tasks in the pool; every pooled
    label is named; created - evicted = pool size; no task hash outside the pool. With ``repair``, fix
    what the scores determine (sizes, task hashes, label counts, names, orphans) in one transaction that
    fails (and is retried) if a worker writes meanwhile."""
    keys = NamespaceKeys(namespace)
    for _ in range(10):
        report = CheckReport(namespace)
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.meta, keys.scores, keys.counters, keys.labels)
                fixes = _inspect(pipe, keys, report)
                if repair and fixes:
                    pipe.multi()
                    for fix in fixes:
                        fix(pipe)
                    pipe.execute()
                    report.repaired = list(report.problems)
            except redis.exceptions.WatchError:
                continue
        return report
    raise redis.exceptions.WatchError(f"namespace {namespace!r} kept changing during the repair; try again")


Fix = Any  # a callable taking the transaction's pipeline


def _inspect(pipe: Any, keys: NamespaceKeys, report: CheckReport) -> list[Fix]:
    meta = {text(k): text(v) for k, v in pipe.hgetall(keys.meta).items()}
    if "hypers" not in meta:
        if pipe.exists(keys.scores):
            report.problems.append(f"{keys.meta} is missing (not derivable: drop the namespace or import a checkpoint)")
            return []
        raise NamespaceNotFoundError(keys.namespace, "this server")
    dtype = get_algorithm(meta.get("algorithm", STORED_DEFAULT_ALGORITHM)).dtype()
    fixes: list[Fix] = []
    if "fence_until_ms" in meta:  # a drop or replace runs for milliseconds and takes its fence down with it
        report.problems.append(
            f"{keys.meta} holds fence_until_ms={meta['fence_until_ms']}, left by a drop or import --replace "
            "that did not finish: it held off task creation and eviction until it expired"
        )
        fixes.append(lambda p: p.hdel(keys.meta, "fence_until_ms"))
    blob = _read_records(pipe, keys, int(meta.get("capacity") or 1), report, fixes)
    snapshot = ScoreSnapshot.from_bytes(int(meta.get("pool_version", 0)), blob, dtype)
    occupied = snapshot.size
    if snapshot.slots is not None and occupied and int(snapshot.slots[-1]) >= occupied:
        report.problems.append(
            f"slot {int(snapshot.slots[-1])} is in use but only {occupied} slots are: the pool has holes, and "
            "workers read the first pool_size slots (not derivable: export and import the namespace)"
        )
    if meta.get("pool_size") != str(occupied):
        report.problems.append(f"pool_size is {meta.get('pool_size')} but {occupied} slots are occupied")
        fixes.append(lambda p: p.hset(keys.meta, "pool_size", occupied))
    counters = {text(k): text(v) for k, v in pipe.hgetall(keys.counters).items()}
    created, evicted = int(counters.get("num_created", 0)), int(counters.get("num_evicted", 0))
    if occupied and not counters:
        report.problems.append(f"{keys.counters} is missing (the counts are lost; not derivable)")
    elif created - evicted != occupied:
        report.problems.append(f"num_created - num_evicted = {created - evicted}, pool size {occupied} (not derivable)")
    names = {int(k): text(v) for k, v in pipe.hgetall(keys.labels).items()}
    active: dict[int, int] = {}
    fields = [n for n in dtype.names or () if n != "task_id" and not n.startswith("unused_")]
    for record, slot in zip(snapshot.records, (snapshot.slots if snapshot.slots is not None else []), strict=True):
        task_id, h = int(record["task_id"]), int(record["label_hash"])
        active[h] = active.get(h, 0) + 1
        fixes += _check_task(pipe, keys, report, task_id, h, int(slot), {f: float(record[f]) for f in fields})
    for h, count in active.items():
        label = {text(k): text(v) for k, v in pipe.hgetall(keys.label(h)).items()}
        if label.get("active") != str(count):
            report.problems.append(f"label {h} has active={label.get('active')} but {count} tasks in the pool")
            fixes.append(lambda p, h=h, count=count: p.hset(keys.label(h), "active", count))
        if h not in names:
            if "label" in label:
                report.problems.append(f"label {h} is not named in {keys.labels} (its aggregate names it)")
                fixes.append(lambda p, h=h, name=label["label"]: p.hset(keys.labels, h, name))
            else:
                report.problems.append(f"label {h} of a pooled task has no name anywhere (not derivable)")
    pooled = {int(t) for t in snapshot.task_ids.tolist()}
    for key in scan_namespace(pipe, keys.namespace, keys.task_pattern):
        if int(key.rsplit(":", 1)[1]) not in pooled:
            report.problems.append(f"{key} is an orphan (its task is not in the pool)")
            fixes.append(lambda p, key=key: p.delete(key))
    for key in scan_namespace(pipe, keys.namespace, keys.label_pattern):
        h = int(key.rsplit(":", 1)[1])
        raw = pipe.hget(key, "active")
        if h not in active and raw is not None and int(raw) != 0:
            report.problems.append(f"label {h} has active={text(raw)} but no task in the pool")
            fixes.append(lambda p, key=key: p.hset(key, "active", 0))
    return fixes


def _read_records(pipe: Any, keys: NamespaceKeys, capacity: int, report: CheckReport, fixes: list[Fix]) -> bytes:
    """Every slot's record, segment after segment (each WATCHed, read whole: 1 MiB at most), a missing
    segment before an existing one read as empty slots so later slots keep their place. A ``:scores``
    longer than one segment was written before segments existed: its slots are read from it, and the repair
    splits it into segments."""
    segments = keys.scores_segments(capacity)
    if len(segments) > 1:
        pipe.watch(*segments[1:])
    first = bytes(pipe.get(keys.scores) or b"")
    if len(first) > SEGMENT_BYTES:
        report.problems.append(
            f"{keys.scores} holds {len(first) // RECORD_SIZE} slots in one string (the layout before segments)"
        )
        for k, start in enumerate(range(0, len(first), SEGMENT_BYTES)):
            key, piece = keys.scores_segment(k), first[start : start + SEGMENT_BYTES]
            fixes.append(lambda p, key=key, piece=piece: p.set(key, piece))
        return first
    parts = [first]
    for k, key in enumerate(segments[1:], start=1):
        part = pipe.get(key)
        if part is not None:  # segment k's slots start at byte k * seg_bytes: pad what came before
            parts += [b"\0" * (k * SEGMENT_BYTES - sum(map(len, parts))), bytes(part)]
    return b"".join(parts)


def _check_task(
    pipe: Any, keys: NamespaceKeys, report: CheckReport, task_id: int, h: int, slot: int, record: dict[str, float]
) -> list[Fix]:
    key = keys.task(task_id)
    stored = {text(k): text(v) for k, v in pipe.hgetall(key).items()}
    if not stored or not set(record) <= set(stored):
        what = "missing" if not stored else "partial"
        report.problems.append(f"task {task_id} is in slot {slot} but {key} is {what} (rebuilt from its record)")
        values = {n: (int(v) if n in INT_TASK_FIELDS else v) for n, v in record.items()}
        return [lambda p: p.hset(key, mapping={**values, "slot": slot})]
    if stored.get("slot") != str(slot) or stored.get("label_hash") != str(h):
        report.problems.append(
            f"{key} says slot {stored.get('slot')} label_hash {stored.get('label_hash')}; its record: slot {slot}, {h}"
        )
        return [lambda p: p.hset(key, mapping={"slot": slot, "label_hash": h})]
    return []


def add_check_command(add: Any) -> None:
    """The CLI's ``check`` command (``add`` is the CLI's sub-command factory)."""
    sub = add("check", _cmd_check, "Verify a pool namespace's invariants; --repair fixes what is derivable.")
    sub.add_argument("--repair", action="store_true", help="repair what the pool's records determine")
    sub.add_argument("--json", action="store_true", help="print JSON instead of lines")


def _cmd_check(args: Any, console: Any) -> int:
    """Exit 0 when the namespace is sound (or was repaired whole), 1 when a problem remains."""
    from curriculum_redis import cli  # the CLI's URL and client helpers (cli imports this module)

    namespace = cli._namespace(args)
    report = cli._with_client(args, lambda client: check_namespace(client, namespace, repair=args.repair))
    remaining = [p for p in report.problems if p not in report.repaired]
    if args.json:
        print(json.dumps({"namespace": namespace, "problems": report.problems, "repaired": report.repaired}))
    else:
        for problem in report.problems:
            console.print(("repaired: " if problem in report.repaired else "problem: ") + problem, markup=False)
        console.print(f"namespace {namespace!r}: " + ("sound" if not remaining else f"{len(remaining)} problems"))
    return 1 if remaining else 0
