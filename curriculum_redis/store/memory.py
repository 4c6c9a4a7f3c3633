"""In-process store: the reference semantics of the store protocol, for one process and for tests.

It mirrors ``RedisStore`` rule for rule (capacity, slots, evict-and-replace re-validation, batch
de-duplication, label aggregates, the episode clock) so the curriculum behaves the same whichever store it
runs on. The per-outcome update is the algorithm's Python mirror of its Lua update.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from curriculum_redis import algorithms
from curriculum_redis.algorithms import sequential
from curriculum_redis.algorithms.sequential import SequentialConfig
from curriculum_redis.config import AlgorithmConfig, PoolConfig
from curriculum_redis.errors import StoreError
from curriculum_redis.state import CurriculumState, LabelStats, StageTrack, TaskRecord
from curriculum_redis.store.base import (
    COUNTERS,
    EVICTED_COUNTER,
    Eviction,
    EvictionOutcome,
    OutcomeBatch,
    RecordResult,
    ScoreSnapshot,
    StagePosition,
    StageState,
    current_counters,
)
from curriculum_redis.store.schema import GENERIC_FIELDS, INT_TASK_FIELDS, LABEL_SCORE_EMA_ALPHA
from curriculum_redis.tasks import Task


class MemoryStore:
    """Shared state held in this process. A re-entrant lock makes each method atomic across threads."""

    def __init__(self, namespace: str = "default") -> None:
        self._namespace = namespace
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._hypers: AlgorithmConfig | None = None
        self._tasks: dict[int, dict[str, float]] = {}
        self._slots: list[int] = []
        self._labels: dict[int, str] = {}
        self._label_stats: dict[int, LabelStats] = {}
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._client_seqs: dict[int, int] = {}
        self._next_client_id = 0
        self._pool_version = 0
        self._stages: _StageTrack | None = None

    @property
    def namespace(self) -> str:
        return self._namespace

    def _require_hypers(self) -> PoolConfig:
        """The hyperparameters of the namespace's task pool."""
        if self._hypers is None:
            raise StoreError(f"namespace {self._namespace!r} has no hyperparameters: call attach() first")
        if not isinstance(self._hypers, PoolConfig):
            raise StoreError(f"namespace {self._namespace!r} runs {self._hypers.algorithm}: it holds no task pool")
        return self._hypers

    @property
    def _algorithm(self) -> algorithms.PoolAlgorithm:
        return algorithms.algorithm_of(self._require_hypers())

    def attach(self, hypers: AlgorithmConfig) -> AlgorithmConfig | None:
        with self._lock:
            if self._hypers is not None:
                return self._hypers
            self._hypers = hypers
            if isinstance(hypers, SequentialConfig):
                self._stages = _StageTrack(hypers)
            return None

    def read_hypers(self) -> AlgorithmConfig | None:
        with self._lock:
            return self._hypers

    def register_client(self) -> int:
        with self._lock:
            self._next_client_id += 1
            return self._next_client_id

    def _fresh(self, label_hash: int, slot: int) -> dict[str, float]:
        state: dict[str, float] = dict.fromkeys((*GENERIC_FIELDS[1:], *self._algorithm.stored_fields()), 0.0)
        state.update(label_hash=label_hash, slot=slot)
        return state

    def _add_task(self, task: Task, slot: int) -> None:
        self._tasks[task.task_id] = self._fresh(task.label_hash, slot)
        self._labels.setdefault(task.label_hash, task.label)
        stats = self._label_stats.setdefault(task.label_hash, LabelStats(label=task.label))
        stats.created += 1
        stats.active += 1
        self._counters["num_created"] += 1

    def create_tasks(self, tasks: Sequence[Task]) -> list[int]:
        with self._lock:
            capacity = self._require_hypers().num_active_tasks
            created = []
            for task in tasks:
                if len(self._tasks) >= capacity:
                    break
                if task.task_id in self._tasks:
                    continue
                self._add_task(task, len(self._slots))
                self._slots.append(task.task_id)
                created.append(task.task_id)
            if created:
                self._pool_version += 1
            return created

    def _require_stages(self) -> _StageTrack:
        if self._stages is None:
            raise StoreError(f"namespace {self._namespace!r} holds no stage curriculum")
        return self._stages

    def stage_position(self) -> StagePosition:
        with self._lock:
            return self._require_stages().position()

    def stage_state(self) -> StageState:
        with self._lock:
            return self._require_stages().state()

    def reset_stage(self, index: int) -> StagePosition:
        with self._lock:
            return self._require_stages().reset(index)

    def record(self, batch: OutcomeBatch) -> RecordResult:
        with self._lock:
            if self._stages is not None:
                return self._stages.record(batch)
            cfg = self._require_hypers()
            algorithm = self._algorithm
            if batch.seq <= self._client_seqs.get(batch.client_id, 0):
                self._counters["num_duplicate_batches"] += 1
                return RecordResult(applied=False)
            self._client_seqs[batch.client_id] = batch.seq
            self._counters["num_batches"] += 1
            recorded = evicted = 0
            for label, count in batch.scheduled.items():
                self._label(label).samples += count
                self._counters["num_scheduled"] += count
            clock = self._counters["num_completed"]
            # Grouped by task in first-seen order, exactly as record_outcomes.lua applies a batch.
            ordered = [o for outcomes in batch.by_task().values() for o in outcomes]
            for outcome in ordered:
                success = 1.0 if outcome.score >= cfg.success_threshold else 0.0
                clock += 1
                recorded += 1
                self._counters["num_failures"] += int(outcome.failed)
                state = self._tasks.get(outcome.task_id)
                if state is None:
                    # Evicted meanwhile: the episode counts, only the per-task update is skipped.
                    evicted += 1
                    if outcome.label_hash in self._labels:
                        stats = self._label(outcome.label_hash)
                        stats.completions += 1
                        stats.score_sum += outcome.score
                        stats.successes += int(success)
                    continue
                score = algorithm.update(state, outcome.score, success, cfg, clock)
                state[algorithm.score_field] = score
                state["completions"] += 1
                state["score_sum"] += outcome.score
                state["last_score"] = outcome.score
                state["last_episode"] = clock
                state["consecutive_failures"] = state["consecutive_failures"] + 1 if outcome.failed else 0
                stats = self._label(int(state["label_hash"]))
                stats.lp_ema = (
                    score if stats.completions == 0 else (stats.lp_ema + LABEL_SCORE_EMA_ALPHA * (score - stats.lp_ema))
                )
                stats.completions += 1
                stats.score_sum += outcome.score
                stats.successes += int(success)
            self._counters["num_completed"] += recorded
            self._counters[EVICTED_COUNTER] += evicted
            return RecordResult(applied=True, recorded=recorded, for_evicted_tasks=evicted)

    def _label(self, label_hash: int) -> LabelStats:
        stats = self._label_stats.get(label_hash)
        if stats is None:
            stats = self._label_stats[label_hash] = LabelStats(label=self._labels.get(label_hash, ""))
        return stats

    def evict_and_replace(self, eviction: Eviction) -> EvictionOutcome:
        with self._lock:
            victim = self._tasks.get(eviction.victim_id)
            if victim is None:
                return "victim_gone"
            if eviction.replacement.task_id in self._tasks:
                return "replacement_exists"
            if eviction.reason == "failures":
                qualifies = victim["consecutive_failures"] >= eviction.min_failures
            else:
                score = victim[self._algorithm.score_field]
                qualifies = victim["completions"] >= eviction.min_presentations and score <= eviction.max_score
            if not qualifies:
                return "victim_not_evictable"
            del self._tasks[eviction.victim_id]
            victim_stats = self._label(int(victim["label_hash"]))
            victim_stats.evicted += 1
            victim_stats.active -= 1
            self._counters["num_evicted"] += 1
            slot = int(victim["slot"])
            self._add_task(eviction.replacement, slot)
            self._slots[slot] = eviction.replacement.task_id
            self._pool_version += 1
            return "evicted"

    def snapshot(self) -> ScoreSnapshot:
        with self._lock:
            algorithm = self._algorithm
            records = np.zeros(len(self._slots), dtype=algorithm.dtype())
            names = [n for n in algorithm.snapshot_fields() if not n.startswith("unused_")]
            for slot, task_id in enumerate(self._slots):
                state = {**self._tasks[task_id], "task_id": task_id}
                for name in names:
                    records[slot][name] = state[name]
            return ScoreSnapshot(self._pool_version, records, episode_clock=self._counters["num_completed"])

    def read_task(self, task_id: int) -> TaskRecord | None:
        with self._lock:
            state = self._tasks.get(task_id)
            if state is None:
                return None
            fields = {n: (int(v) if n in INT_TASK_FIELDS else float(v)) for n, v in state.items()}
            return TaskRecord(task_id=task_id, label=self._labels.get(int(state["label_hash"]), ""), **fields)

    def labels(self) -> dict[int, str]:
        with self._lock:
            return dict(self._labels)

    def label_stats(self) -> dict[int, LabelStats]:
        with self._lock:
            return {h: s.model_copy() for h, s in self._label_stats.items()}

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def export_state(self) -> CurriculumState:
        with self._lock:
            if self._stages is not None:
                return CurriculumState(namespace=self._namespace, hypers=self._hypers, stage=self._stages.export())
            hypers = self._require_hypers()
            tasks = [self.read_task(task_id) for task_id in self._slots]
            return CurriculumState(
                namespace=self._namespace,
                hypers=hypers,
                pool_version=self._pool_version,
                tasks=[t for t in tasks if t is not None],
                labels=dict(self._labels),
                label_stats=self.label_stats(),
                counters=dict(self._counters),
                client_seqs=dict(self._client_seqs),
                next_client_id=self._next_client_id,
            )

    def import_state(self, state: CurriculumState) -> None:
        with self._lock:
            issued = self._next_client_id
            self._reset()
            self._hypers = state.hypers
            if isinstance(state.hypers, SequentialConfig):
                self._stages = _StageTrack(state.hypers)
                self._stages.load(state.stage or StageTrack())
                return
            kept = (*GENERIC_FIELDS[1:], *self._algorithm.stored_fields())
            ordered = sorted(state.tasks, key=lambda t: t.slot)
            for slot, record in enumerate(ordered):
                fields = record.model_dump()
                self._tasks[record.task_id] = {**{n: fields[n] for n in kept if n in fields}, "slot": slot}
                self._slots.append(record.task_id)
            self._labels = dict(state.labels)
            self._label_stats = {h: s.model_copy() for h, s in state.label_stats.items()}
            self._counters.update(current_counters(state.counters))
            self._client_seqs = dict(state.client_seqs)
            self._next_client_id = max(issued, state.next_client_id, *state.client_seqs, 0)
            self._pool_version = state.pool_version + 1

    def touch(self, ttl_s: float) -> None:
        """Nothing expires in memory: the state goes with the process."""

    def close(self) -> None:
        """Nothing to release; present so every store closes the same way."""


class _StageTrack:
    """A stage curriculum's state in memory: ``lua/stage_record.lua``'s rule, applied in Python."""

    def __init__(self, config: SequentialConfig) -> None:
        self.stages = config.stages
        self.index = self.version = 0
        self.counts = dict.fromkeys(("recorded_episodes", "stale_episodes", "duplicate_batches", "advancements",
                                     "resets"), 0)  # fmt: skip
        self.history: dict[int, dict[str, float]] = {}
        self.clients: dict[int, int] = {}
        self.advanced_at: float | None = None
        self._enter(0, time.time())

    def _enter(self, index: int, now: float) -> None:
        self.index = index
        self.episodes = self.successes = 0
        self.score_sum = 0.0
        self.window: deque[bool] = deque()
        self.entered_at = now
        self.entered_clock = now if self.stages[index].reads_seconds() else None
        self.history.setdefault(index, {})["entered_at"] = now

    def position(self) -> StagePosition:
        return StagePosition(self.index, self.version)

    def record(self, batch: OutcomeBatch) -> RecordResult:
        if batch.seq <= self.clients.get(batch.client_id, 0):
            self.counts["duplicate_batches"] += 1
            return RecordResult(applied=False, stage=self.position())
        if any(sequential.stage_of_task(o.task_id) >= len(self.stages) or o.success is None for o in batch.outcomes):
            raise StoreError("a stage batch holds an episode of no stage, or without its success")
        now = time.time()
        applied = stale = advanced = 0
        for outcome in batch.outcomes:
            played = sequential.stage_of_task(outcome.task_id)
            row = self.history.setdefault(played, {})
            if played != self.index:
                stale += 1
                row["stale"] = row.get("stale", 0.0) + 1
                continue
            applied += 1
            self.episodes += 1
            self.successes += int(bool(outcome.success))
            self.score_sum += outcome.score
            self.window.append(bool(outcome.success))
            if len(self.window) > self.stages[played].window:
                self.window.popleft()
            row["episodes"] = row.get("episodes", 0.0) + 1
            if outcome.success:
                row["successes"] = row.get("successes", 0.0) + 1
            seconds = 0.0 if self.entered_clock is None else now - self.entered_clock
            values = sequential.condition_values(self.episodes, self.successes, len(self.window), sum(self.window),
                                      self.score_sum, seconds)  # fmt: skip
            if sequential.should_advance(self.stages[played], played == len(self.stages) - 1, values):
                row.update(advanced_at=now, advanced_after_episodes=float(self.episodes),
                           advanced_with_success_rate=values["success"])  # fmt: skip
                self.version += 1
                self.counts["advancements"] += 1
                self.advanced_at = now
                advanced += 1
                self._enter(played + 1, now)
        self.clients[batch.client_id] = batch.seq
        self.counts["recorded_episodes"] += len(batch.outcomes)
        self.counts["stale_episodes"] += stale
        return RecordResult(True, applied, stale=stale, advanced=advanced, stage=self.position())

    def reset(self, index: int) -> StagePosition:
        now = time.time()
        self.history.setdefault(self.index, {})["left_at"] = now
        self.version += 1
        self.counts["resets"] += 1
        self._enter(index, now)
        return self.position()

    def export(self) -> StageTrack:
        """The state in the portable form, as the Redis keys hold it (see store.stages)."""
        fields: dict[str, float | None] = {
            "index": self.index, "version": self.version, "episodes": self.episodes, "successes": self.successes,
            "score_sum": self.score_sum, "window_successes": sum(self.window), "entered_at": self.entered_at,
            "advanced_at": self.advanced_at, "entered_server_at": self.entered_clock, **self.counts,
        }  # fmt: skip
        stage = {name: repr(v) if isinstance(v, float) else str(v) for name, v in fields.items() if v is not None}
        stage["name"] = self.stages[self.index].name
        history = {f"{i}:{name}": repr(v) for i, row in self.history.items() for name, v in row.items()}
        window = [int(success) for success in reversed(self.window)]
        return StageTrack(stage=stage, window=window, history=history, clients=dict(self.clients))

    def load(self, track: StageTrack) -> None:
        s = track.stage
        if s:
            self.index, self.version = int(s["index"]), int(s["version"])
            self.episodes, self.successes = int(s["episodes"]), int(s.get("successes", 0))
            self.score_sum, self.entered_at = float(s.get("score_sum", 0.0)), float(s["entered_at"])
            self.advanced_at = float(s["advanced_at"]) if "advanced_at" in s else None
            self.entered_clock = float(s["entered_server_at"]) if "entered_server_at" in s else None
            self.counts = {name: int(s.get(name, 0)) for name in self.counts}
        self.window = deque(bool(x) for x in reversed(track.window))
        self.history = {}
        for key, value in track.history.items():
            number, _, name = key.partition(":")
            self.history.setdefault(int(number), {})[name] = float(value)
        self.clients = dict(track.clients)

    def state(self) -> StageState:
        stage = self.stages[self.index]
        return StageState(
            index=self.index,
            name=stage.name,
            version=self.version,
            num_stages=len(self.stages),
            episodes_in_stage=self.episodes,
            window=list(self.window),
            window_size=stage.window,
            window_successes=sum(self.window),
            advance_threshold=stage.advance_threshold,
            min_episodes=stage.min_episodes,
            entered_at=self.entered_at,
            advanced_at=self.advanced_at,
            history={i: dict(row) for i, row in sorted(self.history.items())},
            successes_in_stage=self.successes,
            score_sum=self.score_sum,
            entered_server_at=self.entered_clock,
            stop_condition=stage.stop_condition,
            **self.counts,
        )
