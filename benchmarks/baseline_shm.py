"""Baseline for the benchmarks: the design ``curriculum_redis`` replaces.

Task state lives in a POSIX shared-memory segment (one float64 row per task slot) and every
read-modify-write is guarded by ONE ``multiprocessing.Manager().Lock()`` that all processes share.
The lock proxy travels through pickling, so a worker unpickling the curriculum uses the same
server-side lock as its parent (the fix the reference applied for its "lock not shared" bug, where
each process re-created a private ``Lock()`` after unpickling).

It is a baseline, not a straw man: the maths is vectorised with numpy where the design allows it,
rows are written in place, and a distribution is built from a single copy of the active rows.
What it keeps from the design, because that is what is being compared:

- every update acquires and releases the Manager lock (two round trips to the manager process);
- each process keeps its own ``task_id -> slot`` dict, rebuilt by scanning all slots
  (O(max_tasks)) whenever an id is missing or its slot was reused;
- ``choose_task`` rebuilds the sampling distribution from the shared rows on every call,
  reading them under the lock unless ``lock_reads=False``.

Processes are started with the ``"spawn"`` start method everywhere in this module
(:data:`START_METHOD`): it behaves the same on every platform, never forks a process holding the
manager connection or numpy's threads, and the workers' start-up cost is excluded from the
measurements by a start barrier.

Run ``python -m benchmarks.baseline_shm [--quick]`` for a table of figures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import multiprocessing as mp
import os
import queue
import time
import uuid
import weakref
from collections.abc import Sequence
from multiprocessing.shared_memory import SharedMemory
from types import TracebackType
from typing import Any, Final, Protocol, Self

import numpy as np
import numpy.typing as npt

__all__ = [
    "FIELDS",
    "ROW",
    "SHM_PREFIX",
    "START_METHOD",
    "ShmCurriculum",
    "label_hash",
    "lp_distribution",
    "measure_choose_latency",
    "measure_update_throughput",
]

START_METHOD: Final = "spawn"
"""Start method of every process this module starts (the lock's manager and the workers)."""

SHM_PREFIX = "crbase_"
"""Prefix of the /dev/shm segments this module creates (so tests can look for leaks)."""

# ---------------------------------------------------------------------------------------------
# Row layout: one float64 row per task slot. Ids and label hashes are < 2**53, so exact.
# ---------------------------------------------------------------------------------------------
FIELDS: tuple[str, ...] = (
    "task_id",
    "label_hash",
    "completions",
    "score_sum",
    "last_score",
    "reward_ema",
    "reward_sq_ema",
    "success_ema",
    "p_fast",
    "p_slow",
    "p_true",
    "baseline",
    "lp",
    "active",
)
(
    F_TASK_ID,
    F_LABEL_HASH,
    F_COMPLETIONS,
    F_SCORE_SUM,
    F_LAST_SCORE,
    F_REWARD_EMA,
    F_REWARD_SQ_EMA,
    F_SUCCESS_EMA,
    F_P_FAST,
    F_P_SLOW,
    F_P_TRUE,
    F_BASELINE,
    F_LP,
    F_ACTIVE,
) = range(len(FIELDS))
ROW = len(FIELDS)

_ID_BITS = 52
_SNAPSHOT_COLS = np.array([F_TASK_ID, F_COMPLETIONS, F_LP, F_P_TRUE], dtype=np.intp)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class _Lock(Protocol):
    """What the curriculum needs from its lock (a Manager ``Lock`` proxy in practice)."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any: ...


def label_hash(label: str) -> int:
    """Deterministic 53-bit label hash (first bits of SHA-256), identical in every process."""
    digest = hashlib.sha256(label.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 11


def lp_distribution(
    completions: FloatArray,
    lp: FloatArray,
    p_true: FloatArray,
    *,
    min_samples_for_lp: int = 10,
    progress_smoothing: float = 0.0,
    performance_bonus_weight: float = 0.0,
    lp_score_temperature: float = 0.0,
    z_score_amplification: float = 10.0,
    rand_task_rate: float = 0.01,
) -> FloatArray:
    """Sampling probabilities of the active tasks (same order as the inputs).

    Rule:
    - eligible tasks (``completions >= min_samples_for_lp``):
      ``x = lp + progress_smoothing + performance_bonus_weight * p_true``; ``x /= temperature`` when
      it is > 0, otherwise ``x`` is z-scored (when its std > 1e-10, else 0) and multiplied by
      ``z_score_amplification``; ``w = sigmoid(x)`` normalised over the eligible tasks only;
    - young tasks get an explicit exploration share: each one gets its uniform share ``1/n``, and
      the eligible tasks split the remaining ``n_eligible/n`` by ``w`` (all uniform if none is
      eligible);
    - finally ``p = (1 - rand_task_rate) * p + rand_task_rate / n``.
    The result sums to 1 and has no NaN.
    """
    n = int(completions.shape[0])
    if n == 0:
        return np.empty(0, dtype=np.float64)
    eligible = completions >= min_samples_for_lp
    n_eligible = int(np.count_nonzero(eligible))
    if n_eligible == 0:
        return np.full(n, 1.0 / n)
    x = lp[eligible] + progress_smoothing
    if performance_bonus_weight:
        x = x + performance_bonus_weight * p_true[eligible]
    if lp_score_temperature > 0.0:
        x = x / lp_score_temperature
    else:
        std = float(x.std())
        x = (x - x.mean()) * (z_score_amplification / std) if std > 1e-10 else np.zeros_like(x)
    w = 1.0 / (1.0 + np.exp(-np.clip(x, -500.0, 500.0)))
    probs = np.full(n, 1.0 / n)
    probs[eligible] = w * (n_eligible / (n * float(w.sum())))
    if rand_task_rate > 0.0:
        probs = probs * (1.0 - rand_task_rate) + rand_task_rate / n
    return probs


class _Resources:
    """What a process must release: its mapping, the segment's name (creator) and its Manager.

    Every step is idempotent, so ``close()``, ``unlink()``, ``__exit__`` and the finaliser
    (run on garbage collection or at interpreter exit) may all call it.
    """

    def __init__(self, shm: SharedMemory, manager: Any, creator: bool) -> None:
        self.shm = shm
        self.manager = manager
        self.unlink_pending = creator

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a numpy view still alive: the mapping dies with us
            self.shm.close()
        if self.manager is not None:
            manager, self.manager = self.manager, None
            manager.shutdown()

    def unlink(self) -> None:
        if self.unlink_pending:
            self.unlink_pending = False
            with contextlib.suppress(FileNotFoundError):
                self.shm.unlink()

    def release(self) -> None:
        self.close()
        self.unlink()


class ShmCurriculum:
    """Learning-progress curriculum state in shared memory, guarded by one Manager lock.

    ``ShmCurriculum(max_tasks)`` creates a segment (named ``crbase_<hex>``) and, unless ``lock`` is
    given, a Manager whose ``Lock()`` it uses. ``ShmCurriculum(max_tasks, name, create=False,
    lock=lock)`` attaches to an existing segment; pickling does the same for a worker process and
    keeps the very same lock proxy. The creator unlinks the segment on :meth:`unlink`, on leaving a
    ``with`` block, when garbage-collected, or at interpreter exit.
    """

    def __init__(
        self,
        max_tasks: int,
        name: str | None = None,
        create: bool = True,
        lock: _Lock | None = None,
        *,
        lock_reads: bool = True,
        random_baseline: float | None = None,
        ema_timescale: float = 0.1,
        slow_timescale_factor: float = 0.2,
        tracker_ema_alpha: float = 0.02,
        success_threshold: float = 0.5,
        min_samples_for_lp: int = 10,
        z_score_amplification: float = 10.0,
        rand_task_rate: float = 0.01,
        min_presentations_for_eviction: int = 5,
        eviction_threshold_percentile: float = 0.4,
    ) -> None:
        if max_tasks <= 0:
            raise ValueError("max_tasks must be positive")
        if not create and name is None:
            raise ValueError("attaching (create=False) needs the segment name")
        if not create and lock is None:
            raise ValueError("attaching (create=False) needs the shared lock of the creator")
        self.max_tasks = int(max_tasks)
        self.lock_reads = lock_reads
        self.random_baseline = random_baseline
        self.ema_timescale = ema_timescale
        self.slow_timescale_factor = slow_timescale_factor
        self.tracker_ema_alpha = tracker_ema_alpha
        self.success_threshold = success_threshold
        self.min_samples_for_lp = min_samples_for_lp
        self.z_score_amplification = z_score_amplification
        self.rand_task_rate = rand_task_rate
        self.min_presentations_for_eviction = min_presentations_for_eviction
        self.eviction_threshold_percentile = eviction_threshold_percentile

        self._manager: Any = None
        if lock is None:
            self._manager = mp.get_context(START_METHOD).Manager()
            lock = self._manager.Lock()
        assert lock is not None
        self._lock: _Lock = lock
        nbytes = self.max_tasks * ROW * 8
        if create:
            self._shm = SharedMemory(
                name=name or SHM_PREFIX + uuid.uuid4().hex[:16], create=True, size=nbytes
            )
        else:
            self._shm = SharedMemory(name=name, create=False)
        self._creator = create
        self._attach()
        if create:
            self._arr.fill(0.0)
        self._res = _Resources(self._shm, self._manager, create)
        self._finalizer = weakref.finalize(self, self._res.release)

    def _attach(self) -> None:
        if self._shm.size < self.max_tasks * ROW * 8:
            raise ValueError(f"segment {self._shm.name} is smaller than {self.max_tasks} rows")
        self._arr: FloatArray = np.ndarray((self.max_tasks, ROW), dtype=np.float64, buffer=self._shm.buf)
        self._index: dict[int, int] = {}
        self._id_rng = np.random.default_rng()
        self.dropped_updates = 0
        self.index_rebuilds = 0
        self._closed = False

    # -- pickling: attach to the same segment by name, keep the same Manager lock proxy ---------
    def __getstate__(self) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError("cannot pickle a closed ShmCurriculum")
        state = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("_shm", "_arr", "_index", "_manager", "_finalizer", "_id_rng", "_creator", "_res")
        }
        state["_shm_name"] = self._shm.name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        name = state.pop("_shm_name")
        self.__dict__.update(state)  # includes "_lock": the unpickled proxy of the same lock
        self._manager = None
        self._creator = False
        # Under "spawn" the child shares its parent's resource tracker, so attaching here does not
        # make the child unlink the segment when it exits.
        self._shm = SharedMemory(name=name, create=False)
        self._attach()
        self._res = _Resources(self._shm, None, False)
        self._finalizer = weakref.finalize(self, self._res.release)

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def lock(self) -> _Lock:
        return self._lock

    @property
    def is_creator(self) -> bool:
        return self._creator

    def close(self) -> None:
        """Unmap the segment in this process; the creator also stops the Manager it started.

        The creator's segment name stays until :meth:`unlink` (or garbage collection / exit).
        """
        if self._closed:
            return
        self._closed = True
        del self._arr
        self._manager = None
        self._res.close()

    def unlink(self) -> None:
        """Remove the segment's name (creator only); open mappings stay valid until closed."""
        if not self._creator:
            raise RuntimeError("only the process that created the segment may unlink it")
        self._res.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if self._creator:
            self.unlink()

    def __repr__(self) -> str:
        role = "creator" if self._creator else "attached"
        return f"ShmCurriculum(max_tasks={self.max_tasks}, name={self._shm.name!r}, {role})"

    # -- slot lookup (call with the lock held) ------------------------------------------------
    def _rebuild_index(self) -> None:
        """The slow path: scan every slot (O(max_tasks)) to rebuild this process's id -> slot map."""
        slots = np.flatnonzero(self._arr[:, F_ACTIVE] > 0.5)
        ids = self._arr[slots, F_TASK_ID].astype(np.int64)
        self._index = dict(zip(ids.tolist(), slots.tolist(), strict=True))
        self.index_rebuilds += 1

    def _slot(self, task_id: int) -> int:
        """Slot of ``task_id`` or -1; the slot is re-validated because another process may reuse it."""
        idx = self._index.get(task_id)
        if idx is not None:
            row = self._arr[idx]
            if row[F_ACTIVE] > 0.5 and row[F_TASK_ID] == task_id:
                return idx
        self._rebuild_index()
        return self._index.get(task_id, -1)

    def _fresh_ids(self, rng: np.random.Generator, n: int) -> list[int]:
        taken = set(self._arr[self._arr[:, F_ACTIVE] > 0.5, F_TASK_ID].astype(np.int64).tolist())
        out: list[int] = []
        while len(out) < n:
            for tid in rng.integers(1, 1 << _ID_BITS, size=n - len(out)).tolist():
                if tid not in taken:
                    taken.add(tid)
                    out.append(tid)
        return out

    # -- writes (all under the lock) ----------------------------------------------------------
    def create_tasks(self, n: int, seed: int | None = None, label: str = "default") -> list[int]:
        """Create ``n`` tasks in free slots; returns their ids. Raises ValueError when full."""
        rng = np.random.default_rng(seed)
        lh = float(label_hash(label))
        with self._lock:
            free = np.flatnonzero(self._arr[:, F_ACTIVE] < 0.5)[:n]
            if free.size < n:
                raise ValueError(f"only {free.size} free slots for {n} new tasks")
            ids = self._fresh_ids(rng, n)
            self._arr[free] = 0.0  # a reused slot keeps nothing from its previous task
            self._arr[free, F_TASK_ID] = ids
            self._arr[free, F_LABEL_HASH] = lh
            self._arr[free, F_ACTIVE] = 1.0
            self._index.update(zip(ids, free.tolist(), strict=True))
        return ids

    def update(self, task_id: int, score: float) -> bool:
        """Record one outcome (``score`` clipped to [0, 1]); False if the task no longer exists."""
        s = float(score)
        if not math.isfinite(s):
            raise ValueError(f"score must be finite, got {score!r}")
        s = 0.0 if s < 0.0 else 1.0 if s > 1.0 else s
        succ = 1.0 if s >= self.success_threshold else 0.0
        a = self.ema_timescale
        a_slow = a * self.slow_timescale_factor
        ta = self.tracker_ema_alpha
        with self._lock:
            idx = self._slot(task_id)
            if idx < 0:
                self.dropped_updates += 1
                return False
            row = self._arr[idx]
            n, ssum, _, r_ema, rsq_ema, s_ema, p_fast, p_slow, p_true, base = row[F_COMPLETIONS:F_LP].tolist()
            if n == 0.0:  # first outcome initialises (by count, never by a 0.0 sentinel)
                base = self.random_baseline if self.random_baseline is not None else min(s, 0.75)
                p = max(s - base, 0.0) / max(1.0 - base, 1e-10)
                p_fast = p_slow = p
                p_true = s
                r_ema, rsq_ema, s_ema = s, s * s, succ
            else:
                p = max(s - base, 0.0) / max(1.0 - base, 1e-10)
                p_fast += a * (p - p_fast)
                p_slow += a_slow * (p - p_slow)
                p_true += a * (s - p_true)
                r_ema += ta * (s - r_ema)
                rsq_ema += ta * (s * s - rsq_ema)
                s_ema += ta * (succ - s_ema)
            # theta = 0.5: the reweighting R is the identity, so raw LP = |p_fast - p_slow|.
            lp = abs(p_fast - p_slow)
            row[F_COMPLETIONS : F_LP + 1] = (
                n + 1.0, ssum + s, s, r_ema, rsq_ema, s_ema, p_fast, p_slow, p_true, base, lp,
            )  # fmt: skip
        return True

    def remove(self, task_id: int) -> bool:
        """Remove a task; its whole row is zeroed. False if it does not exist."""
        with self._lock:
            idx = self._slot(task_id)
            if idx < 0:
                return False
            self._arr[idx] = 0.0
            self._index.pop(task_id, None)
        return True

    def evict_one(self, label: str = "default") -> tuple[int, int] | None:
        """Evict the lowest-LP evictable task and create its replacement in the same slot.

        Evictable: at least ``min_presentations_for_eviction`` outcomes and LP at or below the
        ``eviction_threshold_percentile`` quantile of the pool's LP. Returns (evicted, new) ids.
        """
        lh = float(label_hash(label))
        with self._lock:
            slots = np.flatnonzero(self._arr[:, F_ACTIVE] > 0.5)
            if slots.size == 0:
                return None
            lp = self._arr[slots, F_LP]
            qualifies = (self._arr[slots, F_COMPLETIONS] >= self.min_presentations_for_eviction) & (
                lp <= np.quantile(lp, self.eviction_threshold_percentile)
            )
            if not qualifies.any():
                return None
            cand = np.flatnonzero(qualifies)
            idx = int(slots[cand[int(np.argmin(lp[cand]))]])
            old = int(self._arr[idx, F_TASK_ID])
            new = self._fresh_ids(self._id_rng, 1)[0]
            row = self._arr[idx]
            row[:] = 0.0
            row[F_TASK_ID] = new
            row[F_LABEL_HASH] = lh
            row[F_ACTIVE] = 1.0
            self._index.pop(old, None)
            self._index[new] = idx
        return old, new

    # -- reads ----------------------------------------------------------------------------------
    def _snapshot(self) -> FloatArray:
        """One copy of (task_id, completions, lp, p_true) for the active slots."""
        arr = self._arr
        slots = np.flatnonzero(arr[:, F_ACTIVE] > 0.5)
        snap: FloatArray = arr[slots[:, None], _SNAPSHOT_COLS]
        return snap

    def distribution(self) -> tuple[IntArray, FloatArray]:
        """(task ids, probabilities) recomputed from the shared rows."""
        if self.lock_reads:
            with self._lock:
                snap = self._snapshot()
        else:
            snap = self._snapshot()
        probs = lp_distribution(
            snap[:, 1],
            snap[:, 2],
            snap[:, 3],
            min_samples_for_lp=self.min_samples_for_lp,
            z_score_amplification=self.z_score_amplification,
            rand_task_rate=self.rand_task_rate,
        )
        return snap[:, 0].astype(np.int64), probs

    def choose_task(self, rng: np.random.Generator) -> int:
        """Draw a task id: fresh distribution, cumulative sum, ``searchsorted``."""
        ids, probs = self.distribution()
        if ids.size == 0:
            raise LookupError("no active tasks")
        cdf = np.cumsum(probs)
        i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        return int(ids[min(i, ids.size - 1)])

    def active_ids(self) -> list[int]:
        with self._lock:
            ids = self._arr[self._arr[:, F_ACTIVE] > 0.5, F_TASK_ID].astype(np.int64)
        out: list[int] = ids.tolist()
        return out

    def row(self, task_id: int) -> dict[str, float]:
        """All fields of one task (KeyError if it does not exist)."""
        with self._lock:
            idx = self._slot(task_id)
            if idx < 0:
                raise KeyError(task_id)
            values = self._arr[idx].tolist()
        return dict(zip(FIELDS, values, strict=True))

    def completions_total(self) -> int:
        """Sum of ``completions`` over the active tasks."""
        with self._lock:
            total = float(self._arr[self._arr[:, F_ACTIVE] > 0.5, F_COMPLETIONS].sum())
        return round(total)


# ---------------------------------------------------------------------------------------------
# Benchmark helpers
# ---------------------------------------------------------------------------------------------
def _update_worker(
    cur: ShmCurriculum,
    task_ids: Sequence[int],
    n_updates: int,
    seed: int,
    barrier: Any,
    results: Any,
) -> None:
    """Worker body: ``n_updates`` outcomes on random tasks, timed from the start barrier."""
    try:
        rng = np.random.default_rng(seed)
        picks = np.asarray(task_ids, dtype=np.int64)[rng.integers(0, len(task_ids), size=n_updates)].tolist()
        scores = rng.random(n_updates).tolist()
        update = cur.update
        barrier.wait(timeout=120)
        t0 = time.perf_counter()  # CLOCK_MONOTONIC on Linux: comparable across processes
        for tid, s in zip(picks, scores, strict=True):
            if not update(tid, s):
                raise RuntimeError(f"task {tid} vanished during the benchmark")
        t1 = time.perf_counter()
        results.put(("ok", os.getpid(), t0, t1))
    except BaseException as exc:
        results.put(("error", os.getpid(), repr(exc), 0.0))
        raise
    finally:
        cur.close()


def measure_update_throughput(
    n_processes: int, n_updates_per_process: int, n_tasks: int = 256
) -> dict[str, float]:
    """Aggregate outcome throughput of ``n_processes`` spawned workers sharing one Manager lock.

    Measured from the moment the start barrier releases to the last worker's last update.
    Raises RuntimeError unless the final completion total equals processes x updates (which is
    what proves the lock serialises the read-modify-writes). Cleans up its segment, its manager
    and its workers.
    """
    if n_processes <= 0 or n_updates_per_process < 0:
        raise ValueError("need n_processes > 0 and n_updates_per_process >= 0")
    ctx = mp.get_context(START_METHOD)
    procs: list[Any] = []
    with ShmCurriculum(max_tasks=n_tasks) as cur:
        ids = cur.create_tasks(n_tasks, seed=0)
        barrier = ctx.Barrier(n_processes)
        results = ctx.Queue()
        try:
            for rank in range(n_processes):
                p = ctx.Process(
                    target=_update_worker,
                    args=(cur, ids, n_updates_per_process, 1000 + rank, barrier, results),
                    name=f"shm-bench-{rank}",
                )
                p.start()
                procs.append(p)
            spans: list[tuple[float, float]] = []
            deadline = time.monotonic() + 600.0
            while len(spans) < n_processes:
                try:
                    kind, pid, a, b = results.get(timeout=1.0)
                except queue.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead or time.monotonic() > deadline:
                        codes = [p.exitcode for p in procs]
                        raise RuntimeError(f"benchmark worker failed: exit codes {codes}") from None
                    continue
                if kind != "ok":
                    raise RuntimeError(f"benchmark worker {pid} failed: {a}")
                spans.append((a, b))
            for p in procs:
                p.join(timeout=60)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=10)
            results.close()
            results.join_thread()
        expected = n_processes * n_updates_per_process
        total = cur.completions_total()
        if total != expected:
            raise RuntimeError(f"lost updates: {total} completions recorded, {expected} expected")
    seconds = max(b for _, b in spans) - min(a for a, _ in spans)
    return {
        "processes": n_processes,
        "updates": expected,
        "seconds": seconds,
        "updates_per_s": expected / seconds if seconds > 0 else math.inf,
    }


def _prime_all_eligible(cur: ShmCurriculum, ids: Sequence[int], rng: np.random.Generator) -> None:
    """Give every task ``min_samples_for_lp`` outcomes along its own trend, so LPs differ."""
    n_out = cur.min_samples_for_lp
    slopes = rng.uniform(-0.08, 0.08, size=len(ids))
    starts = rng.uniform(0.1, 0.6, size=len(ids))
    for k in range(n_out):
        scores = np.clip(starts + slopes * k + rng.normal(0.0, 0.03, size=len(ids)), 0.0, 1.0).tolist()
        for tid, s in zip(ids, scores, strict=True):
            cur.update(tid, s)


def measure_choose_latency(
    n_tasks: int, n_draws: int, *, lock_reads: bool = True, seed: int = 0
) -> dict[str, float]:
    """Median and p90 seconds of one ``choose_task`` over a pool of ``n_tasks`` eligible tasks."""
    if n_tasks <= 0 or n_draws <= 0:
        raise ValueError("need n_tasks > 0 and n_draws > 0")
    rng = np.random.default_rng(seed)
    with ShmCurriculum(max_tasks=n_tasks, lock_reads=lock_reads) as cur:
        ids = cur.create_tasks(n_tasks, seed=seed)
        _prime_all_eligible(cur, ids, rng)
        for _ in range(min(10, n_draws)):  # warm-up
            cur.choose_task(rng)
        times = np.empty(n_draws)
        clock = time.perf_counter
        choose = cur.choose_task
        for i in range(n_draws):
            t0 = clock()
            choose(rng)
            times[i] = clock() - t0
    return {
        "tasks": n_tasks,
        "draws": n_draws,
        "median_s": float(np.median(times)),
        "p90_s": float(np.percentile(times, 90)),
    }


def _fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} µs"
    return f"{seconds * 1e3:8.2f} ms"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the shared-memory + Manager().Lock() baseline.")
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    args = parser.parse_args(argv)
    n_updates = 400 if args.quick else 3000
    n_draws = 50 if args.quick else 300

    print(
        f"shared memory + Manager().Lock() baseline  (start method: {START_METHOD}, cpus: {os.cpu_count()})"
    )
    print()
    print(f"{'processes':>9}  {'updates':>8}  {'seconds':>8}  {'updates/s':>10}")
    for n_proc in (1, 2, 4):
        r = measure_update_throughput(n_proc, n_updates)
        print(f"{r['processes']:>9}  {r['updates']:>8}  {r['seconds']:>8.3f}  {r['updates_per_s']:>10.0f}")
    print()
    print(f"{'tasks':>6}  {'draws':>6}  {'lock reads':>10}  {'median':>11}  {'p90':>11}")
    for n_tasks in (256, 1024):
        for lock_reads in (True, False):
            r = measure_choose_latency(n_tasks, n_draws, lock_reads=lock_reads)
            print(
                f"{r['tasks']:>6}  {r['draws']:>6}  {lock_reads!s:>10}  "
                f"{_fmt_s(r['median_s']):>11}  {_fmt_s(r['p90_s']):>11}"
            )


if __name__ == "__main__":
    main()
