"""The curriculum facade: ``get_task()`` and ``update_task_performance()`` over a shared store.

Every algorithm runs on this one engine. Each process draws tasks from its own view of the shared state
(a snapshot of a task pool's scores, or the current stage), so the hot path needs no network, and sends
outcomes in batches, one atomic store call per batch. Everything process-local (client id, buffer, view,
connection) is rebuilt after ``fork()`` or unpickling; only the config crosses processes.
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

from curriculum_redis.algorithms import Algorithm, find_algorithm
from curriculum_redis.algorithms.base import TaskView
from curriculum_redis.config import AlgorithmConfig, CurriculumConfig, MismatchPolicy, PoolConfig, reconcile_hypers
from curriculum_redis.errors import ConfigError, ScriptError, StoreUnavailableError
from curriculum_redis.identity import check_generator, probe_generator
from curriculum_redis.integrity import check_eviction_policy
from curriculum_redis.outcomes import OutcomeBuffer
from curriculum_redis.sampler import EmptyPoolError, RefreshPolicy
from curriculum_redis.state import CurriculumState
from curriculum_redis.store.base import CurriculumStore, Outcome, RecordResult
from curriculum_redis.store.connection import map_errors
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.tasks import Task

__all__ = ["OFFLINE_RETRY_MAX_S", "OFFLINE_RETRY_S", "Curriculum"]

log = logging.getLogger(__name__)

OFFLINE_RETRY_S = 0.5
"""After the store fails to answer, how long the hot path goes without trying it again; doubled after each
further failure (an OOM or a read-only primary can last), up to ``OFFLINE_RETRY_MAX_S``."""
OFFLINE_RETRY_MAX_S = 8.0


class Curriculum:
    """A shared curriculum (the algorithm of ``config.algorithm``). Safe to pickle into worker processes.

    Without ``redis_url`` (and without ``store``) the state lives in this process (:class:`MemoryStore`).
    """

    def __init__(self, config: CurriculumConfig, store: CurriculumStore | None = None) -> None:
        self.config = config
        self.store = store if store is not None else self._default_store(config)
        self._origin_pid = os.getpid()
        self._init_process_state()

    @staticmethod
    def _default_store(config: CurriculumConfig) -> CurriculumStore:
        if config.redis_url is None:
            return MemoryStore(config.namespace)
        return RedisStore.from_url(config.redis_url, config.namespace)

    @property
    def given(self) -> AlgorithmConfig:
        """The hyperparameters as given in the config."""
        return self.config.algorithm

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self.hypers: AlgorithmConfig = self.given
        self._attached = False
        self._client_id = 0
        self._seq = 0
        self._view: TaskView = self._make_view(self.hypers, self._view_rng(self._pid))
        self._policy = RefreshPolicy.from_config(self.config.sampler, self.given.refresh_every_draws())
        self._buffer = OutcomeBuffer(self.config.buffer)
        self._last_counters: dict[str, int] = {}
        self._closed = False
        self.refused: dict[str, int] = {}
        """Outcomes the store refused, by reason (the error code, e.g. ``CR_LABEL``): dropped, never re-sent."""
        self._retry_store_at = 0.0
        self._retry_delay = OFFLINE_RETRY_S
        self._atexit: Callable[[], None] | None = None

    def _view_rng(self, salt: int) -> np.random.Generator:
        """Workers sharing a config draw differently: the seed is mixed with ``salt`` (the client id). With
        ``refresh_every_s=None`` (reproducible runs) the process that made the curriculum draws from the seed
        alone, so a run repeats; its forked or unpickled copies still mix in their salt."""
        if self.config.sampler.refresh_every_s is None and self._pid == getattr(self, "_origin_pid", None):
            return np.random.default_rng(self.config.seed)
        return np.random.default_rng([self.config.seed, salt])

    def _make_view(self, hypers: AlgorithmConfig, rng: np.random.Generator) -> TaskView:
        return find_algorithm(hypers.algorithm).view(hypers, rng, self.config)

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm running this curriculum (one instance per name)."""
        return find_algorithm(self.hypers.algorithm)

    # -- lifecycle -------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "store": self.store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self.store = state["store"]
        self._init_process_state()

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's buffer, client id and view are the parent's.
            self._init_process_state()

    def _ensure_ready(self) -> None:
        self._ensure_process()
        if not self._attached:
            self._attach()

    def _attach(self) -> None:
        if self.config.task_generator is not None and isinstance(self.given, PoolConfig):
            probe_generator(self.config.task_generator)
        if isinstance(self.store, RedisStore):
            ttl = self.config.ttl_s is not None
            with map_errors(lambda: self.store.where):  # type: ignore[attr-defined]
                check_eviction_policy(self.store.client, self.store.where, ttl, self.config.on_evicting_server)
        stored = self.store.attach(self.given)
        if stored is not None:
            where = f"namespace {self.store.namespace!r}"
            self.hypers = reconcile_hypers(stored, self.given, self.config.on_mismatch, where)
        if self.config.task_generator is not None and isinstance(self.hypers, PoolConfig):
            check_generator(self.store, self.config.task_generator)
        self._client_id = self.store.register_client()
        self._view = self._make_view(self.hypers, self._view_rng(self._client_id))
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
                self._flush(strict=False)
            except StoreUnavailableError:
                log.warning("store unreachable at close: %d outcomes not written", self._buffer.pending_outcomes)
        self.store.close()

    def __enter__(self) -> Curriculum:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hot path --------------------------------------------------------------------------------

    def get_task(self) -> Task:
        """A task drawn from the local view; refreshes the view when the policy says so."""
        self._ensure_ready()
        if self._policy.tick():
            self._refresh_quietly()
        try:
            task = self._view.draw()
        except EmptyPoolError:  # dropped or replaced under this process before it ever held a pool: refill once
            self._refresh_quietly()
            task = self._view.draw()
        if self._view.counts_draws:
            self._buffer.add_sample(task.label_hash)
        if self._buffer.stale():
            self._flush_quietly()
        return task

    def sample(self, k: int) -> list[Task]:
        """``k`` tasks at once, one per sub-environment of a vectorised environment; each is drawn exactly
        as :meth:`get_task` draws (the view refreshes mid-way when due), so k may exceed the pool."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"sample(k) needs a whole number k >= 1, not {k!r}")
        return [self.get_task() for _ in range(k)]

    def update_task_performance(self, task_id: int, score: float) -> None:
        """Report one episode's score. Buffered; written in batches (``flush()`` forces it)."""
        self._ensure_ready()
        self._add(self._view.outcome(task_id, score))

    def report_task_failure(self, task_id: int) -> None:
        """The task's environment could not be built: scored 0 (a failed episode of a stage), and a pool
        task is evicted after repeated failures."""
        self._ensure_ready()
        self._add(self._view.failure(task_id))

    def _add(self, outcome: Outcome) -> None:
        self._buffer.add(outcome)
        if self._buffer.full() or self._buffer.stale():
            self._flush_quietly()

    # -- writes ----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered outcome now. Raises StoreUnavailableError if the store is down
        (the outcomes stay buffered and go out with the next flush), and the first ScriptError if the store
        refused a batch (dropped and counted in :attr:`refused`; the later batches are written first)."""
        self._flush()

    def _flush(self, strict: bool = True) -> RecordResult | None:
        """Flush; the reply to the last batch written, if any. A refused batch never blocks the later ones;
        ``strict`` (an explicit call) raises its error once they are written, the hot path only logs it."""
        self._ensure_ready()
        self._seal()
        result = None
        refusal: ScriptError | None = None
        while self._buffer.pending:
            try:
                result = self.store.record(self._buffer.pending[0])
            except ScriptError as exc:
                self._refuse(exc)
                refusal = refusal or exc
                continue
            self._buffer.acknowledge()
            self._view.on_recorded(result)
        if strict and refusal is not None:
            raise refusal
        return result

    def _refuse(self, exc: ScriptError) -> None:
        """The store refused the oldest batch before writing any of it: sending it again cannot help, and
        keeping it would block every later batch. Drop it, count it by reason, log it."""
        batch = self._buffer.acknowledge()
        reason = str(exc).split(" ", 1)[0] or "ScriptError"
        self.refused[reason] = self.refused.get(reason, 0) + len(batch.outcomes)
        log.error(
            "the store refused a batch of %d outcomes (client %d, seq %d), dropped it: %s (%d refused so far)",
            len(batch.outcomes),
            batch.client_id,
            batch.seq,
            exc,
            self.refused_outcomes,
        )

    @property
    def refused_outcomes(self) -> int:
        """Outcomes in batches the store refused (see :attr:`refused` for the reasons)."""
        return sum(self.refused.values())

    def _seal(self) -> None:
        if self._buffer.seal(self._client_id, self._seq + 1):
            self._seq += 1

    def _flush_quietly(self) -> None:
        """Flush, or, while the store is unreachable, seal the batch and keep it for later."""
        if self._offline():
            self._seal()
            return
        try:
            self._flush(strict=False)
        except StoreUnavailableError as exc:
            self._went_offline(exc)
        else:
            self._back_online()

    def _offline(self) -> bool:
        return time.monotonic() < self._retry_store_at

    def _went_offline(self, exc: StoreUnavailableError) -> None:
        """Back off (``OFFLINE_RETRY_S``, doubling): the hot path keeps serving from the local view meanwhile."""
        if self._retry_store_at == 0.0:
            log.warning(
                "store unreachable: sampling from the last snapshot, buffering outcomes (%d pending): %s",
                self.pending_outcomes,
                exc,
            )
        else:
            self._retry_delay = min(self._retry_delay * 2, OFFLINE_RETRY_MAX_S)
        self._retry_store_at = time.monotonic() + self._retry_delay

    def _back_online(self) -> None:
        if self._retry_store_at:
            log.warning("store reachable again; writing the outcomes buffered meanwhile")
        self._retry_store_at = 0.0
        self._retry_delay = OFFLINE_RETRY_S

    @property
    def dropped_outcomes(self) -> int:
        """Outcomes dropped because the store was unreachable for longer than the buffer could hold."""
        return self._buffer.dropped_outcomes

    @property
    def pending_outcomes(self) -> int:
        return self._buffer.pending_outcomes + self._buffer.open_outcomes

    # -- view ------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the shared state into the local view (a pool is filled or pruned on the way)."""
        self._ensure_ready()
        # Our own buffered outcomes go first: eviction must see them, and must not orphan them.
        if not self._buffer.is_empty():
            self._flush(strict=False)
        self._view.refresh(self.store)
        self._policy.refreshed()
        self._back_online()

    def _refresh_quietly(self) -> None:
        if self._offline():
            self._policy.refreshed()
            return
        try:
            self.refresh()
            self._flush_quietly()
        except StoreUnavailableError as exc:
            self._policy.refreshed()
            if not self._view.ready:
                raise
            self._went_offline(exc)

    # -- reads -----------------------------------------------------------------------------------

    def probabilities(self) -> dict[int, float]:
        """Each active task's sampling probability in this process's current view."""
        self._ensure_ready()
        return self._view.probabilities()

    def _observe(self) -> TaskView:
        """The namespace's view for the read paths, with its stored hyperparameters.

        Only writes this process's own buffered outcomes (if it has any); never attaches, creates, evicts
        or refreshes, so a monitoring process or a checkpoint comparison leaves what it observes unchanged.
        """
        self._ensure_process()
        if self._attached:
            self._flush_quietly()
            return self._view
        hypers = self.store.read_hypers() or self.given
        return self._make_view(hypers, np.random.default_rng(self.config.seed))

    def stats(self) -> dict[str, float]:
        """The statistics of the whole curriculum (every process's work), from a fresh read.

        ``epoch/<counter>`` is the change of each cumulative counter since this object's previous
        ``stats()`` call: counters are never reset in the store, so readers don't disturb each other.
        Read-only (see :meth:`_observe`): a fresh ``Curriculum(config).stats()`` changes no key.
        """
        out = self._observe().stats(self.store, self._last_counters)
        out["outcomes_dropped_locally"] = float(self._buffer.dropped_outcomes)
        return out

    def label_table(self) -> dict[str, dict[str, float]]:
        """Per-label statistics as a table (label -> column -> value). Read-only, like :meth:`stats`."""
        return self._observe().label_table(self.store)

    # -- checkpoints -----------------------------------------------------------------------------

    def get_state(self) -> CurriculumState:
        """The whole namespace (hypers, tasks or stages, labels, aggregates, counters), for a checkpoint."""
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
        self._view = self._make_view(self.hypers, self._view_rng(self._client_id))
        self._view.load(self.store)
        self._policy.refreshed()

    @property
    def client_id(self) -> int:
        self._ensure_ready()
        return self._client_id
