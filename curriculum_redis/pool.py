"""The task pool one process sees: its snapshot of the scores, the local distribution, and pool upkeep.

A refresh reads the packed scores in one call, fills the pool up to capacity, evicts what the algorithm
finds least useful (each eviction re-checked and replaced in one atomic call on the store) and rebuilds the
distribution the sampler draws from; between refreshes, drawing a task needs no network round trip.

With a finite generator the pool holds each configuration at most once: new tasks are drawn without
replacement from the ids not in the pool (the store also refuses an id it already holds, atomically, so
processes filling the pool at once make no duplicate); a space that fits in ``num_active_tasks`` is held
whole and never evicted; an evicted configuration may come back in a later replacement.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import numpy.typing as npt

from curriculum_redis.algorithms.base import PoolAlgorithm
from curriculum_redis.config import CurriculumConfig, PoolConfig
from curriculum_redis.errors import ConfigError
from curriculum_redis.sampler import LocalSampler
from curriculum_redis.stats import flatten_labels, label_table, pool_stats
from curriculum_redis.store.base import COUNTERS, CurriculumStore, Eviction, Outcome, RecordResult, ScoreSnapshot
from curriculum_redis.store.schema import MAX_TASK_ID
from curriculum_redis.tasks import Task, TaskGenerator

log = logging.getLogger(__name__)

TASK_ID_LIMIT = 2**31

ADMISSION_CHOICES = 4
"""Candidates drawn per replacement, for an algorithm's admission odds to choose among."""
"""New task ids are drawn from [1, 2**31): short, readable keys, and exact as doubles."""
FINITE_LISTED = 1_000_000
"""A finite space up to this size is listed to draw new ids without replacement; a larger one is sampled."""


class PoolView:
    """One process's view of a task pool: the last snapshot, its tasks and their probabilities.

    Without a :class:`CurriculumConfig` it only observes: it reads statistics and never makes a task."""

    counts_draws = True

    def __init__(
        self,
        hypers: PoolConfig,
        algorithm: PoolAlgorithm,
        rng: np.random.Generator,
        config: CurriculumConfig | None = None,
    ) -> None:
        self.config = config
        self.hypers = hypers
        self.algorithm = algorithm
        self._rng = rng
        self._sampler = LocalSampler(rng)
        self._tasks: dict[int, Task] = {}
        self._placed_ids: npt.NDArray[np.int64] | None = None
        self._placed: npt.NDArray[np.float64] | None = None
        self._slots: dict[int, int] = {}
        self._snapshot: ScoreSnapshot | None = None
        self._probs = np.zeros(0)
        self._pool_version = -1
        self._next_touch = 0.0

    @property
    def generator(self) -> TaskGenerator:
        if self.config is None:
            raise ConfigError("a view that only observes makes no tasks")
        return self.config.generator

    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    # -- upkeep ----------------------------------------------------------------------------------

    def refresh(self, store: CurriculumStore) -> None:
        """Read the scores, fill or prune the pool, and rebuild the local distribution."""
        snap = store.snapshot()
        space = None if self.config is None else self.generator.size
        capacity = self.hypers.num_active_tasks if space is None else min(self.hypers.num_active_tasks, space)
        if snap.size < capacity:
            store.create_tasks(self._new_tasks(capacity - snap.size, snap.task_ids))
            snap = store.snapshot()
        elif (space is None or space > capacity) and self._evict(store, snap):
            snap = store.snapshot()
        if snap.size == 0 and self._snapshot is not None and self._snapshot.size > 0:
            # The namespace was dropped between this refresh's steps (an admin's drop or import): keep
            # sampling the last pool rather than fail every draw; the next refresh fills the new one.
            log.warning("the pool was empty on refresh (namespace dropped or replaced?); sampling the last one")
            return
        self.install(snap)
        ttl_s = None if self.config is None else self.config.ttl_s
        if ttl_s is not None and time.monotonic() >= self._next_touch:
            store.touch(ttl_s)
            self._next_touch = time.monotonic() + ttl_s / 3

    def load(self, store: CurriculumStore) -> None:
        """Install exactly what the store holds (after an import); eviction waits for the next refresh."""
        self._pool_version = -1
        self.install(store.snapshot())

    def _new_tasks(self, n: int, held: npt.NDArray[np.int64]) -> list[Task]:
        """``n`` new tasks; from a finite generator, distinct ids not in ``held`` (fewer when none are left)."""
        generator = self.generator
        space = generator.size
        if space is None:
            return [generator.get_task(int(self._rng.integers(1, TASK_ID_LIMIT))) for _ in range(n)]
        taken = set(held.tolist())
        if space <= FINITE_LISTED:
            free = np.setdiff1d(np.arange(1, space + 1, dtype=np.int64), np.asarray(sorted(taken), dtype=np.int64))
            picked = free if free.size <= n else np.sort(self._rng.choice(free, n, replace=False))
            return [generator.get_task(int(i)) for i in picked]
        ids: list[int] = []
        while len(ids) < min(n, space - len(taken)):
            task_id = int(self._rng.integers(1, space + 1))
            if task_id not in taken:
                taken.add(task_id)
                ids.append(task_id)
        return [generator.get_task(i) for i in ids]

    def _admitted(self, n: int, snap: ScoreSnapshot) -> list[Task]:
        """``n`` replacements, picked among ``ADMISSION_CHOICES`` times as many candidates by the
        algorithm's admission odds (when it gives any)."""
        if not self.algorithm.admits_by_label:
            return self._new_tasks(n, snap.task_ids)
        if n == 0:
            return []
        candidates = self._new_tasks(n * ADMISSION_CHOICES, snap.task_ids)
        labels = np.array([task.label_hash for task in candidates], dtype=np.int64)
        odds = self.algorithm.admission_weights(snap, self.hypers, labels)
        if odds is None or len(candidates) <= n:
            return candidates[:n]
        odds = np.where(np.isfinite(odds), np.maximum(odds, 0.0), 0.0)
        if np.count_nonzero(odds) < n:  # too few with any chance: the likeliest first, then the generator's order
            order = np.argsort(-odds, kind="stable")[:n]
            return [candidates[i] for i in sorted(order.tolist())]
        picked = self._rng.choice(len(candidates), n, replace=False, p=odds / odds.sum())
        return [candidates[i] for i in sorted(picked.tolist())]

    def _evict(self, store: CurriculumStore, snap: ScoreSnapshot) -> bool:
        """Evict up to ``max_evictions_per_refresh`` tasks, each replaced in the same atomic call."""
        hypers = self.hypers
        evictions = []
        failing = np.flatnonzero(snap.column("consecutive_failures") >= hypers.max_consecutive_failures)
        failing = failing[: hypers.max_evictions_per_refresh]
        budget = hypers.max_evictions_per_refresh - len(failing)
        # The server re-checks each candidate's stored score against the bound the algorithm gives.
        candidates, max_scores = self.algorithm.eviction_candidates(snap, hypers, budget)
        fresh = iter(self._admitted(len(failing) + len(candidates), snap))
        for index, replacement in zip(failing.tolist(), fresh, strict=False):
            evictions.append(Eviction(int(snap.task_ids[index]), replacement, "failures",
                                      min_failures=hypers.max_consecutive_failures))  # fmt: skip
        for index, max_score, replacement in zip(candidates.tolist(), max_scores.tolist(), fresh, strict=False):
            evictions.append(Eviction(int(snap.task_ids[index]), replacement, "low_score",
                                      min_presentations=hypers.min_presentations_for_eviction,
                                      max_score=float(max_score)))  # fmt: skip
        return any([store.evict_and_replace(eviction) == "evicted" for eviction in evictions])

    def install(self, snap: ScoreSnapshot) -> None:
        ids = snap.task_ids
        # A version can repeat once a namespace is dropped or imported anew: the ids must match too.
        same = snap.pool_version == self._pool_version and len(self._tasks) == ids.size
        if not same or not all(i in self._tasks for i in ids.tolist()):
            generator = self.generator
            self._tasks = {i: self._tasks.get(i) or generator.get_task(i) for i in ids.tolist()}
            self._slots = snap.slot_of()
            self._pool_version = snap.pool_version
        snap = self._located(snap)
        self._probs = self.algorithm.distribution(snap, self.hypers)
        self._sampler.load(ids, self._probs)
        self._snapshot = snap

    def _located(self, snap: ScoreSnapshot) -> ScoreSnapshot:
        """``snap`` with each task's position when the generator gives tasks ``coordinates``; a view that
        only observes has no generator to read them from. Kept while the pool holds the same tasks."""
        if self.config is None or snap.size == 0:
            return snap
        ids = snap.task_ids
        if self._placed_ids is None or not np.array_equal(ids, self._placed_ids):
            positions = [self._task_for(task_id).position for task_id in ids.tolist()]
            if all(p is None for p in positions):
                self._placed = None
            elif any(p is None for p in positions):
                raise ConfigError("some tasks have coordinates and others none: give every generator of the set some")
            elif len({len(p) for p in positions if p is not None}) != 1:
                raise ConfigError("tasks' coordinates differ in length: every task must be placed in the same space")
            else:
                self._placed = np.asarray(positions, dtype=np.float64)
            self._placed_ids = ids
        return snap if self._placed is None else dataclasses.replace(snap, positions=self._placed)

    # -- hot path --------------------------------------------------------------------------------

    def draw(self) -> Task:
        return self._tasks[self._sampler.draw()]

    def _task_for(self, task_id: int) -> Task:
        if isinstance(task_id, bool) or not isinstance(task_id, int | np.integer):
            raise ConfigError(f"task_id must be an int, got {type(task_id).__name__} {task_id!r}")
        task_id = int(task_id)
        task = self._tasks.get(task_id)
        if task is None:
            if not 1 <= task_id <= MAX_TASK_ID:
                raise ConfigError(f"task_id must be in [1, 2**53), got {task_id}")
            task = self.generator.get_task(task_id)
        return task

    def outcome(self, task_id: int, score: float) -> Outcome:
        """The score normalised onto [0, 1]; the store applies the success threshold."""
        task = self._task_for(task_id)
        value = self.hypers.normalize(score)
        return Outcome(task.task_id, task.label_hash, value, False, self._slots.get(task.task_id, -1))

    def failure(self, task_id: int) -> Outcome:
        task = self._task_for(task_id)
        return Outcome(task.task_id, task.label_hash, 0.0, True, self._slots.get(task.task_id, -1))

    def on_recorded(self, result: RecordResult) -> None:
        """Nothing to learn from a reply: scores are read on refresh."""

    # -- reads -----------------------------------------------------------------------------------

    def probabilities(self) -> dict[int, float]:
        if self._snapshot is None:
            return {}
        return dict(zip(self._snapshot.task_ids.tolist(), self._probs.tolist(), strict=True))

    def _observed(self, store: CurriculumStore) -> tuple[ScoreSnapshot, npt.NDArray[np.float64]]:
        snap = store.snapshot()
        if snap.size == 0:  # a namespace not made yet names no algorithm: give it this one's columns
            snap = ScoreSnapshot(snap.pool_version, np.zeros(0, self.algorithm.dtype()), None, snap.episode_clock)
        snap = self._located(snap)
        return snap, self.algorithm.distribution(snap, self.hypers)

    def current_probabilities(self, store: CurriculumStore) -> dict[int, float]:
        snap, probs = self._observed(store)
        return dict(zip(snap.task_ids.tolist(), probs.tolist(), strict=True))

    def stats(self, store: CurriculumStore, last_counters: dict[str, int] | None = None) -> dict[str, float]:
        """Counters (and their change since ``last_counters``, updated in place), pool and label statistics."""
        snap, probs = self._observed(store)
        score_field = self.algorithm.score_field
        counters = store.counters()
        out: dict[str, float] = {name: float(counters.get(name, 0)) for name in COUNTERS}
        if last_counters is not None:
            out.update({f"epoch/{n}": float(counters.get(n, 0) - last_counters.get(n, 0)) for n in COUNTERS})
            last_counters.clear()
            last_counters.update(counters)
        out.update(pool_stats(snap, probs, self.hypers.num_active_tasks, score_field))
        out.update(flatten_labels(label_table(snap, probs, store.label_stats(), score_field)))
        return out

    def label_table(self, store: CurriculumStore) -> dict[str, dict[str, float]]:
        snap, probs = self._observed(store)
        return label_table(snap, probs, store.label_stats(), self.algorithm.score_field)
