"""The store protocol: the only operations a curriculum needs from its shared state.

Each write is atomic in every implementation (one Lua script call on Redis, one method call under
the GIL in memory), so no caller ever takes a lock. Reads return plain values, never live views.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from curriculum_redis.config import AlgorithmConfig
from curriculum_redis.state import COUNTER_NAMES, CurriculumState, LabelStats, TaskRecord
from curriculum_redis.store.schema import RECORD_SIZE
from curriculum_redis.tasks import Task

EVICTED_COUNTER = "num_outcomes_for_evicted_tasks"
"""Outcomes whose task had left the pool when they were written: counted in ``num_completed`` and in their
label's aggregates like every other outcome; only the per-task update was skipped."""
LEGACY_COUNTERS: dict[str, str] = {"num_outcomes_for_unknown_tasks": EVICTED_COUNTER}
"""Other counter names a namespace or an export may hold -> the name they are read under, so every stored
namespace stays readable. ``num_outcomes_for_unknown_tasks`` counted outcomes that were kept out of
``num_completed`` and skipped their per-task update: what the evicted-task counter counts as skipped."""
COUNTERS: tuple[str, ...] = tuple(dict.fromkeys(LEGACY_COUNTERS.get(name, name) for name in COUNTER_NAMES))
"""The cumulative counters every store keeps (``state.COUNTER_NAMES`` under today's names)."""


def current_counters(raw: Mapping[str, int]) -> dict[str, int]:
    """Every counter of ``COUNTERS`` (0 when absent), legacy names folded into today's, others left out."""
    out = dict.fromkeys(COUNTERS, 0)
    for name, value in raw.items():
        current = LEGACY_COUNTERS.get(name, name)
        if current in out:
            out[current] += int(value)
    return out


@dataclass(frozen=True)
class ScoreSnapshot:
    """The compact scores of every active task, as read in one go."""

    pool_version: int
    records: npt.NDArray[np.void]
    slots: npt.NDArray[np.int64] | None = None
    episode_clock: int = 0
    """The namespace's global episode count when the snapshot was read (0: unknown)."""
    positions: npt.NDArray[np.float64] | None = None
    """Each task's position in task space (one row per record) when its generator gives tasks
    ``coordinates``: not stored, each process reads them from its tasks' configs."""

    @property
    def size(self) -> int:
        return int(self.records.size)

    @property
    def task_ids(self) -> npt.NDArray[np.int64]:
        return self.records["task_id"].astype(np.int64)

    @property
    def label_hashes(self) -> npt.NDArray[np.int64]:
        return self.records["label_hash"].astype(np.int64)

    def column(self, name: str) -> npt.NDArray[np.float64]:
        return np.asarray(self.records[name], dtype=np.float64)

    @classmethod
    def from_bytes(cls, pool_version: int, blob: bytes, dtype: np.dtype[Any], episode_clock: int = 0) -> ScoreSnapshot:
        """The occupied slots of the packed ``:scores`` string: one record per pool slot, laid out as
        ``dtype`` (the algorithm's ``dtype()``: the store's fields, its score and state fields), read in
        one GET."""
        usable = len(blob) - len(blob) % RECORD_SIZE
        records = np.frombuffer(blob[:usable], dtype=dtype)
        occupied = np.flatnonzero(records["task_id"] > 0)
        return cls(pool_version, records[occupied], occupied.astype(np.int64), episode_clock)

    def slot_of(self) -> dict[int, int]:
        """task_id -> slot, so a batch can tell the script where each task's record is."""
        slots = self.slots if self.slots is not None else np.arange(self.size)
        return dict(zip(self.task_ids.tolist(), slots.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished episode: a normalised score in [0, 1], or a failure to build the task."""

    task_id: int
    label_hash: int
    score: float
    failed: bool = False
    slot: int = -1
    """Where the task's record was in the sender's snapshot (-1: unknown); the script checks it."""
    success: bool | None = None
    """Decided by the client for stages (each stage has its own threshold); None for a pool, whose script
    applies the namespace's ``success_threshold``."""


@dataclass(frozen=True)
class OutcomeBatch:
    """Outcomes and per-label sample counts of one client, applied at most once by ``(client_id, seq)``."""

    client_id: int
    seq: int
    outcomes: Sequence[Outcome] = ()
    scheduled: dict[int, int] = field(default_factory=dict)

    def by_task(self) -> dict[int, list[Outcome]]:
        grouped: dict[int, list[Outcome]] = {}
        for outcome in self.outcomes:
            grouped.setdefault(outcome.task_id, []).append(outcome)
        return grouped

    def label_hashes(self) -> list[int]:
        seen = dict.fromkeys(o.label_hash for o in self.outcomes)
        seen.update(dict.fromkeys(self.scheduled))
        return list(seen)


@dataclass(frozen=True, slots=True)
class StagePosition:
    """Where a stage curriculum stands: the current stage, and a version bumped by every change of it."""

    index: int
    version: int


@dataclass(frozen=True, slots=True)
class RecordResult:
    applied: bool
    """False when the batch had been applied before (a re-sent batch)."""
    recorded: int = 0
    """Outcomes counted (every outcome of an applied pool batch; the current stage's episodes of a stage
    batch)."""
    for_evicted_tasks: int = 0
    """Of those, outcomes whose task was no longer in the pool: their per-task update was skipped."""
    stale: int = 0
    """Episodes played in a stage that was no longer current when they arrived: counted, not applied."""
    advanced: int = 0
    """Stage advancements this batch made."""
    stage: StagePosition | None = None
    """The stage after the batch (stages only)."""


@dataclass(frozen=True)
class StageState:
    """The whole stored state of a stage curriculum, read in one transaction."""

    index: int
    name: str
    version: int
    num_stages: int
    episodes_in_stage: int
    window: list[bool]
    """The current stage's last outcomes, oldest first."""
    window_size: int
    window_successes: int
    advance_threshold: float
    min_episodes: int
    recorded_episodes: int
    stale_episodes: int
    duplicate_batches: int
    advancements: int
    resets: int
    entered_at: float
    advanced_at: float | None
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    """Per stage index: episodes, successes, stale, entered_at, advanced_at, ... (as stored)."""
    successes_in_stage: int = 0
    score_sum: float = 0.0
    """Sum of the scores of the current stage's episodes (a success counts 1.0 when recorded without score)."""
    entered_server_at: float | None = None
    """When the current stage was entered by the server's clock (only if its condition reads seconds)."""
    stop_condition: str | None = None

    @property
    def window_success_rate(self) -> float:
        return self.window_successes / len(self.window) if self.window else 0.0

    @property
    def score_mean(self) -> float:
        return self.score_sum / self.episodes_in_stage if self.episodes_in_stage else 0.0


@dataclass(frozen=True, slots=True)
class Eviction:
    """Replace ``victim_id`` by ``replacement`` if, on the store, the victim still qualifies."""

    victim_id: int
    replacement: Task
    reason: Literal["low_score", "failures"] = "low_score"
    min_presentations: int = 1
    max_score: float = float("inf")
    """The highest headline score (the algorithm's ``score_field``) the victim may hold on the store and
    still be evicted for ``low_score``."""
    min_failures: int = 1


EvictionOutcome = Literal["evicted", "victim_gone", "victim_not_evictable", "replacement_exists", "fenced"]
"""``fenced``: an admin is dropping or replacing the namespace (lua/fence_namespace.lua); nothing happened."""


@runtime_checkable
class CurriculumStore(Protocol):
    """Shared curriculum state. ``RedisStore`` and ``MemoryStore`` implement it with equal semantics."""

    @property
    def namespace(self) -> str: ...

    def attach(self, hypers: AlgorithmConfig) -> AlgorithmConfig | None:
        """Store ``hypers`` in an empty namespace and return None, or return the ones already stored."""
        ...

    def read_hypers(self) -> AlgorithmConfig | None:
        """The stored hyperparameters, or None when the namespace does not exist. Writes nothing, so an
        observer can learn the namespace's algorithm without attaching."""
        ...

    def register_client(self) -> int:
        """A client id never handed out before in this namespace (the key of batch de-duplication)."""
        ...

    def create_tasks(self, tasks: Sequence[Task]) -> list[int]:
        """Add tasks until the pool reaches capacity; ids already in the pool are skipped."""
        ...

    def record(self, batch: OutcomeBatch) -> RecordResult:
        """Apply a batch once: to the task pool, or, for stages, episode by episode to the current stage
        (advancing it when its rule holds)."""
        ...

    def evict_and_replace(self, eviction: Eviction) -> EvictionOutcome: ...

    def snapshot(self) -> ScoreSnapshot: ...

    def read_task(self, task_id: int) -> TaskRecord | None: ...

    def labels(self) -> dict[int, str]: ...

    def label_stats(self) -> dict[int, LabelStats]: ...

    def counters(self) -> dict[str, int]: ...

    def stage_position(self) -> StagePosition:
        """The current stage of a stage namespace (one small read; the state is made again if it vanished)."""
        ...

    def stage_state(self) -> StageState:
        """Everything a stage namespace stores, read atomically."""
        ...

    def reset_stage(self, index: int) -> StagePosition:
        """Go to stage ``index`` with an empty window; episodes of other stages recorded later are stale."""
        ...

    def export_state(self) -> CurriculumState: ...

    def import_state(self, state: CurriculumState) -> None:
        """Replace the namespace's whole content by ``state``, all or nothing."""
        ...

    def touch(self, ttl_s: float) -> None:
        """Make every key of the namespace expire ``ttl_s`` from now unless touched again."""
        ...

    def close(self) -> None: ...
