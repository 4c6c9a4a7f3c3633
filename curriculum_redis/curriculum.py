"""The curriculum facade: ``get_task()`` and ``update_task_performance()`` over a shared store.

Each process samples from its own snapshot of the scores (no network on the hot path) and sends
outcomes in batches, one atomic store call per batch. Everything process-local (client id, buffer,
sampler, connection) is rebuilt after ``fork()`` or unpickling; only the config crosses processes.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from curriculum_redis.algorithms import Algorithm, algorithm_of
from curriculum_redis.config import (
    AnyAlgorithmConfig,
    CurriculumConfig,
    MismatchPolicy,
    SequentialConfig,
    safe_to_change,
)
from curriculum_redis.errors import ConfigError, HyperparameterMismatchError, StoreUnavailableError
from curriculum_redis.outcomes import OutcomeBuffer
from curriculum_redis.sampler import LocalSampler, RefreshPolicy
from curriculum_redis.scoring import normalize_score
from curriculum_redis.state import CurriculumState
from curriculum_redis.stats import flatten_labels, label_table, pool_stats
from curriculum_redis.store.base import COUNTERS, CurriculumStore, Eviction, Outcome, ScoreSnapshot
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.tasks import MAX_TASK_ID, Task

log = logging.getLogger(__name__)

OFFLINE_RETRY_S = 0.5
"""After the store fails to answer, how long the hot path goes without trying it again."""

TASK_ID_LIMIT = 2**31
"""New task ids are drawn from [1, 2**31): short, readable keys, and exact as doubles."""


def reconcile_hypers(
    stored: AnyAlgorithmConfig, given: AnyAlgorithmConfig, policy: MismatchPolicy, where: str
) -> AnyAlgorithmConfig:
    """The hyperparameters to run with, or an error naming every field that may not differ.

    Another algorithm is refused whatever the policy: the stored numbers would mean something else."""
    if stored.algorithm != given.algorithm:
        raise HyperparameterMismatchError({"algorithm": (stored.algorithm, given.algorithm)}, where)
    diffs = stored.differences(given)  # type: ignore[arg-type]
    if not diffs:
        return given
    if policy == "adopt":
        log.info("%s: adopting stored hyperparameters (differing: %s)", where, ", ".join(diffs))
        return stored
    unsafe = {name: diff for name, diff in diffs.items() if name not in safe_to_change(given)}
    if policy == "allow_safe" and not unsafe:
        return given
    raise HyperparameterMismatchError(diffs if policy == "error" else unsafe, where)


class Curriculum:
    """A shared curriculum (the algorithm of ``config.algorithm``). Safe to pickle into worker processes.

    ``Curriculum(config)`` with a :class:`~curriculum_redis.config.SequentialConfig` gives a
    :class:`~curriculum_redis.sequential.SequentialCurriculum`: the same API on the stage engine, so the
    same worker code runs every algorithm.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Curriculum:
        config = args[0] if args else kwargs.get("config")
        if (
            cls is Curriculum
            and isinstance(config, CurriculumConfig)
            and isinstance(config.algorithm, SequentialConfig)
        ):
            from curriculum_redis.sequential import SequentialCurriculum

            return super().__new__(SequentialCurriculum)
        return super().__new__(cls)

    @property
    def given(self) -> AnyAlgorithmConfig:
        """The task-pool algorithm's hyperparameters as given in the config."""
        algorithm = self.config.algorithm
        if isinstance(algorithm, SequentialConfig):
            raise ConfigError("a sequential config runs on SequentialCurriculum, not on a task pool")
        return algorithm

    def __init__(self, config: CurriculumConfig, store: CurriculumStore | None = None) -> None:
        self.config = config
        if store is None:
            store = self._default_store(config)
        self.store = store
        self._init_process_state()

    @staticmethod
    def _default_store(config: CurriculumConfig) -> CurriculumStore:
        if config.redis_url is None:
            return MemoryStore(config.namespace)
        from curriculum_redis.store.redis import RedisStore

        return RedisStore.from_url(config.redis_url, config.namespace)

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self.hypers: AnyAlgorithmConfig = self.given
        self._attached = False
        self._client_id = 0
        self._seq = 0
        self._rng = np.random.default_rng([self.config.seed, self._pid])
        self._sampler = LocalSampler(self._rng)
        self._policy = RefreshPolicy(self.config.sampler.refresh_every_draws, self.config.sampler.refresh_every_s)
        self._buffer = OutcomeBuffer(self.config.buffer)
        self._tasks: dict[int, Task] = {}
        self._slots: dict[int, int] = {}
        self._snapshot: ScoreSnapshot | None = None
        self._probs = np.zeros(0)
        self._pool_version = -1
        self._last_counters: dict[str, int] = {}
        self._closed = False
        self._retry_store_at = 0.0
        self._next_touch = 0.0
        self._atexit: Callable[[], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "store": self.store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self.store = state["store"]
        self._init_process_state()

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's buffer, client id and sampler are the parent's.
            self._init_process_state()

    def _ensure_ready(self) -> None:
        self._ensure_process()
        if not self._attached:
            self._attach()

    def _attach(self) -> None:
        stored = self.store.attach(self.given)
        if stored is not None:
            where = f"namespace {self.store.namespace!r}"
            self.hypers = reconcile_hypers(stored, self.given, self.config.on_mismatch, where)
        self._client_id = self.store.register_client()
        self._rng = np.random.default_rng([self.config.seed, self._client_id])
        self._sampler = LocalSampler(self._rng)
        self._attached = True
        ref = weakref.ref(self)

        def flush_at_exit() -> None:
            me = ref()
            if me is not None and not me._closed:
                me.close()

        self._atexit = flush_at_exit
        atexit.register(flush_at_exit)
        self.refresh()

    def close(self) -> None:
        """Flush what is buffered and release the store's connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._atexit is not None:
            atexit.unregister(self._atexit)
        if self._attached and self._pid == os.getpid():
            try:
                self.flush()
            except StoreUnavailableError:
                log.warning("store unreachable at close: %d outcomes not written", self._buffer.pending_outcomes)
        self.store.close()

    def __enter__(self) -> Curriculum:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hot path --------------------------------------------------------------------------------

    def get_task(self) -> Task:
        """A task drawn from the local snapshot; refreshes the snapshot when the policy says so."""
        self._ensure_ready()
        if self._policy.tick():
            self._refresh_quietly()
        task = self._tasks[self._sampler.draw()]
        self._buffer.add_sample(task.label_hash)
        if self._buffer.stale():
            self._flush_quietly()
        return task

    def update_task_performance(self, task_id: int, score: float) -> None:
        """Report one episode's score. Buffered; written in batches (``flush()`` forces it)."""
        s = normalize_score(score, self.hypers.score_range)
        self._add_outcome(task_id, s, failed=False)

    def report_task_failure(self, task_id: int) -> None:
        """The task's environment could not be built: scored 0 and evicted after repeated failures."""
        self._add_outcome(task_id, 0.0, failed=True)

    def _add_outcome(self, task_id: int, score: float, failed: bool) -> None:
        self._ensure_ready()
        task = self._task_for(task_id)
        self._buffer.add(Outcome(task.task_id, task.label_hash, score, failed, self._slots.get(task.task_id, -1)))
        if self._buffer.full() or self._buffer.stale():
            self._flush_quietly()

    def _task_for(self, task_id: int) -> Task:
        if isinstance(task_id, bool) or not isinstance(task_id, int | np.integer):
            raise ConfigError(f"task_id must be an int, got {type(task_id).__name__} {task_id!r}")
        task_id = int(task_id)
        task = self._tasks.get(task_id)
        if task is None:
            if not 1 <= task_id <= MAX_TASK_ID:
                raise ConfigError(f"task_id must be in [1, 2**53), got {task_id}")
            task = self.config.generator.get_task(task_id)
        return task

    # -- writes ----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered outcome now. Raises StoreUnavailableError if the store is down
        (the outcomes stay buffered and go out with the next flush)."""
        self._ensure_ready()
        if self._buffer.seal(self._client_id, self._seq + 1):
            self._seq += 1
        while self._buffer.pending:
            self.store.record(self._buffer.pending[0])
            self._buffer.acknowledge()

    def _flush_quietly(self) -> None:
        """Flush, or, while the store is unreachable, seal the batch and keep it for later."""
        if self._offline():
            if self._buffer.seal(self._client_id, self._seq + 1):
                self._seq += 1
            return
        try:
            self.flush()
        except StoreUnavailableError as exc:
            self._went_offline(exc)
        else:
            self._back_online()

    def _offline(self) -> bool:
        return time.monotonic() < self._retry_store_at

    def _went_offline(self, exc: StoreUnavailableError) -> None:
        """Back off for ``OFFLINE_RETRY_S``: the hot path keeps serving from the snapshot meanwhile."""
        if self._retry_store_at == 0.0:
            log.warning(
                "store unreachable: sampling from the last snapshot, buffering outcomes (%d pending): %s",
                self.pending_outcomes,
                exc,
            )
        self._retry_store_at = time.monotonic() + OFFLINE_RETRY_S

    def _back_online(self) -> None:
        if self._retry_store_at:
            log.warning("store reachable again; writing the outcomes buffered meanwhile")
        self._retry_store_at = 0.0

    @property
    def dropped_outcomes(self) -> int:
        """Outcomes dropped because the store was unreachable for longer than the buffer could hold."""
        return self._buffer.dropped_outcomes

    @property
    def pending_outcomes(self) -> int:
        return self._buffer.pending_outcomes + self._buffer.open_outcomes

    # -- snapshot --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the scores, fill or prune the pool, and rebuild the local distribution."""
        self._ensure_ready()
        # Our own buffered outcomes go first: eviction must see them, and must not orphan them.
        if not self._buffer.is_empty():
            self.flush()
        snap = self.store.snapshot()
        capacity = self.hypers.num_active_tasks
        if snap.size < capacity:
            self._create_tasks(capacity - snap.size)
            snap = self.store.snapshot()
        elif self._evict(snap):
            snap = self.store.snapshot()
        self._install(snap)
        self._back_online()
        if self.config.ttl_s is not None and time.monotonic() >= self._next_touch:
            self.store.touch(self.config.ttl_s)
            self._next_touch = time.monotonic() + self.config.ttl_s / 3

    def _refresh_quietly(self) -> None:
        if self._offline():
            self._policy.refreshed()
            return
        try:
            self.refresh()
            self._flush_quietly()
        except StoreUnavailableError as exc:
            self._policy.refreshed()
            if self._snapshot is None:
                raise
            self._went_offline(exc)

    def _new_task(self) -> Task:
        return self.config.generator.get_task(int(self._rng.integers(1, TASK_ID_LIMIT)))

    def _create_tasks(self, count: int) -> None:
        self.store.create_tasks([self._new_task() for _ in range(count)])

    def _evict(self, snap: ScoreSnapshot) -> bool:
        """Evict up to ``max_evictions_per_refresh`` tasks, each replaced in the same atomic call."""
        hypers = self.hypers
        evicted = False
        failing = np.flatnonzero(snap.column("consecutive_failures") >= hypers.max_consecutive_failures)
        for index in failing[: hypers.max_evictions_per_refresh]:
            eviction = Eviction(
                int(snap.task_ids[index]),
                self._new_task(),
                "failures",
                min_failures=hypers.max_consecutive_failures,
            )
            evicted |= self.store.evict_and_replace(eviction) == "evicted"
        budget = hypers.max_evictions_per_refresh - len(failing)
        # The server re-checks each candidate's stored score against the bound the algorithm gives.
        candidates, max_scores = self.algorithm.eviction_candidates(snap, hypers, budget)
        for index, max_score in zip(candidates.tolist(), max_scores.tolist(), strict=True):
            eviction = Eviction(
                int(snap.task_ids[index]),
                self._new_task(),
                "low_lp",
                min_presentations=hypers.min_presentations_for_eviction,
                max_lp=float(max_score),
            )
            evicted |= self.store.evict_and_replace(eviction) == "evicted"
        return evicted

    def _install(self, snap: ScoreSnapshot) -> None:
        ids = snap.task_ids
        if snap.pool_version != self._pool_version or len(self._tasks) != ids.size:
            generator = self.config.generator
            self._tasks = {i: self._tasks.get(i) or generator.get_task(i) for i in ids.tolist()}
            self._slots = snap.slot_of()
            self._pool_version = snap.pool_version
        self._probs = self._distribution(snap)
        self._sampler.load(ids, self._probs)
        self._snapshot = snap
        self._policy.refreshed()

    @property
    def algorithm(self) -> Algorithm:
        return algorithm_of(self.hypers)

    def _distribution(self, snap: ScoreSnapshot) -> npt.NDArray[np.float64]:
        return self.algorithm.distribution(snap, self.hypers)

    # -- reads -----------------------------------------------------------------------------------

    def probabilities(self) -> dict[int, float]:
        """Each active task's sampling probability in this process's current snapshot."""
        self._ensure_ready()
        if self._snapshot is None:
            return {}
        return dict(zip(self._snapshot.task_ids.tolist(), self._probs.tolist(), strict=True))

    def _observe(self) -> tuple[AnyAlgorithmConfig, ScoreSnapshot, npt.NDArray[np.float64]]:
        """The namespace as stored, for the read paths: its hyperparameters, scores and distribution.

        Only writes this process's own buffered outcomes (if it has any); never attaches, creates, evicts
        or refreshes, so a monitoring process or a checkpoint comparison leaves what it observes unchanged.
        """
        self._ensure_process()
        if self._attached:
            self._flush_quietly()
            hypers = self.hypers
        else:
            hypers = self.store.read_hypers() or self.given
        snap = self.store.snapshot()
        return hypers, snap, algorithm_of(hypers).distribution(snap, hypers)

    def stats(self) -> dict[str, float]:
        """The statistics of the whole curriculum (every process's work), from a fresh read.

        ``epoch/<counter>`` is the change of each cumulative counter since this object's previous
        ``stats()`` call: counters are never reset in the store, so readers don't disturb each other.
        Read-only (see :meth:`_observe`): a fresh ``Curriculum(config).stats()`` changes no key.
        """
        hypers, snap, probs = self._observe()
        score_field = algorithm_of(hypers).score_field
        counters = self.store.counters()
        out: dict[str, float] = {name: float(counters.get(name, 0)) for name in COUNTERS}
        out.update(
            {f"epoch/{name}": float(counters.get(name, 0) - self._last_counters.get(name, 0)) for name in COUNTERS}
        )
        self._last_counters = dict(counters)
        out.update(pool_stats(snap, probs, hypers.num_active_tasks, score_field))
        out.update(flatten_labels(label_table(snap, probs, self.store.label_stats(), score_field)))
        out["outcomes_dropped_locally"] = float(self._buffer.dropped_outcomes)
        return out

    def label_table(self) -> dict[str, dict[str, float]]:
        """Per-label statistics as a table (label -> column -> value). Read-only, like :meth:`stats`."""
        hypers, snap, probs = self._observe()
        return label_table(snap, probs, self.store.label_stats(), algorithm_of(hypers).score_field)

    # -- checkpoints -----------------------------------------------------------------------------

    def get_state(self) -> CurriculumState:
        """The whole namespace (hypers, tasks, labels, aggregates, counters), for a trainer checkpoint."""
        self._ensure_ready()
        self.flush()
        return self.store.export_state()

    def load_state(self, state: CurriculumState, on_mismatch: MismatchPolicy | None = None) -> None:
        """Replace the namespace's content by ``state``; refuses other hyperparameters unless told."""
        self._ensure_ready()
        policy = on_mismatch or self.config.on_mismatch
        self.hypers = reconcile_hypers(state.hypers, self.given, policy, "the checkpoint")
        self.flush()
        self.store.import_state(state)
        # The checkpoint's client table may hold this client's id with a higher seq: start afresh.
        self._client_id = self.store.register_client()
        self._seq = 0
        self._pool_version = -1
        # Install exactly what was loaded; eviction waits for the next regular refresh.
        self._install(self.store.snapshot())

    @property
    def client_id(self) -> int:
        self._ensure_ready()
        return self._client_id
