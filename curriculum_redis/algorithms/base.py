"""The algorithm interface: what a task stores, how scores become probabilities, what is evictable.

Every algorithm shares one packed record layout per pool slot (:data:`RECORD_FIELDS` doubles, 128 bytes):
the store-owned fields (:data:`GENERIC_FIELDS`), then the algorithm's headline score, then up to
:data:`MAX_STATE_FIELDS` algorithm state fields. The store writes the generic fields itself; the per-outcome
update of the score and state fields is the algorithm's, in Lua (``lua/algorithm_<name>.lua``, spliced into
``record_outcomes.lua``) and mirrored in Python (:meth:`Algorithm.update`, used by the in-process store,
bit for bit the same doubles). Turning a snapshot into probabilities and picking eviction candidates is
pure numpy here. Adding an algorithm touches neither the store nor the scripts of the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from curriculum_redis.config import AnyAlgorithmConfig

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

GENERIC_FIELDS: tuple[str, ...] = (
    "task_id",
    "label_hash",
    "completions",
    "score_sum",
    "last_score",
    "consecutive_failures",
    "last_episode",
)
"""Store-owned fields of every record. ``last_episode`` is the global episode clock (the namespace's
``num_completed`` counter) at the task's last recorded outcome."""

MAX_STATE_FIELDS = 8
RECORD_FIELDS = len(GENERIC_FIELDS) + 1 + MAX_STATE_FIELDS
RECORD_SIZE = 8 * RECORD_FIELDS


class Algorithm(ABC):
    """One curriculum algorithm. Instances are stateless; the registry holds one per name."""

    name: ClassVar[str]
    score_field: ClassVar[str]
    """The headline score (record index 8): what eviction re-checks on the server and label EMAs average."""
    state_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def snapshot_fields(cls) -> tuple[str, ...]:
        pads = tuple(f"unused_{i}" for i in range(len(cls.state_fields), MAX_STATE_FIELDS))
        return (*GENERIC_FIELDS, cls.score_field, *cls.state_fields, *pads)

    @classmethod
    def stored_fields(cls) -> tuple[str, ...]:
        """The algorithm's fields that a task hash holds beside the generic ones (no unused slots)."""
        return (cls.score_field, *cls.state_fields)

    @classmethod
    def dtype(cls) -> np.dtype[Any]:
        return np.dtype([(name, "<f8") for name in cls.snapshot_fields()])

    @abstractmethod
    def meta_fields(self, cfg: AnyAlgorithmConfig) -> dict[str, str]:
        """The hyperparameters the Lua update reads from meta, as strings (the Lua file's ``HYPERS``)."""

    @abstractmethod
    def update(self, state: dict[str, float], x: float, success: float, cfg: AnyAlgorithmConfig, clock: int) -> float:
        """Apply one normalised outcome ``x`` (``success`` is 1.0 or 0.0) to ``state`` in place and return
        the new headline score. ``state`` holds ``completions`` (before this outcome), the score field and
        the state fields; ``clock`` is the global episode count including this outcome. Must give the same
        doubles as ``update`` in the algorithm's Lua file."""

    @abstractmethod
    def distribution(self, snapshot: ScoreSnapshot, cfg: AnyAlgorithmConfig) -> FloatArray:
        """Sampling probability of each task of ``snapshot`` (a ScoreSnapshot); sums to 1, never NaN."""

    def eviction_candidates(
        self, snapshot: ScoreSnapshot, cfg: AnyAlgorithmConfig, limit: int
    ) -> tuple[IndexArray, FloatArray]:
        """At most ``limit`` evictable task indices, lowest score first, and for each the highest score the
        server may still find on the task and evict it. Default: tasks with ``min_presentations_for_eviction``
        outcomes whose score is at or below the ``eviction_threshold_percentile`` quantile."""
        score = snapshot.column(self.score_field)
        idx, threshold = low_score_candidates(
            snapshot.column("completions"), score, cfg.eviction_threshold_percentile,
            cfg.min_presentations_for_eviction, limit,
        )  # fmt: skip
        return idx, np.full(idx.size, threshold)

    def stats_columns(self) -> tuple[str, ...]:
        return (self.score_field,)


def low_score_candidates(
    completions: FloatArray, score: FloatArray, percentile: float, min_presentations: int, limit: int
) -> tuple[IndexArray, float]:
    if score.size == 0 or limit <= 0:
        return np.zeros(0, dtype=np.intp), 0.0
    threshold = float(np.quantile(score, percentile))
    ok = (np.asarray(completions) >= min_presentations) & (score <= threshold)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(score[idx], kind="stable")]
    return order[:limit], threshold


def mix_uniform(probs: FloatArray, rate: float) -> FloatArray:
    n = probs.size
    if n == 0:
        return probs
    out = (1.0 - rate) * probs + rate / n
    return np.asarray(out / out.sum(), dtype=np.float64)
