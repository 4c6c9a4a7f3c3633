"""The portable state of one namespace: what ``get_state``, exports and imports carry.

Plain pydantic models of numbers and strings, so a state goes through msgpack or JSON and is never
pickled. ``SCHEMA_VERSION`` changes whenever the meaning of a stored field changes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from curriculum_redis.algorithms import pool_algorithms
from curriculum_redis.config import AlgorithmConfig, parse_config

SCHEMA_VERSION = 2
"""2: one generic 128-byte record for every algorithm (store fields, score, algorithm state). A state
that only gains optional parts (``stage``) keeps its version."""
STATE_FORMAT = "curriculum_redis.state"

COUNTER_NAMES: tuple[str, ...] = (
    "num_created",
    "num_evicted",
    "num_completed",
    "num_scheduled",
    "num_failures",
    "num_outcomes_for_evicted_tasks",
    "num_batches",
    "num_duplicate_batches",
)
"""Cumulative counters. They are never reset in the store: each reader keeps its own epoch deltas."""

LABEL_STAT_FIELDS: tuple[str, ...] = (
    "created",
    "evicted",
    "active",
    "completions",
    "score_sum",
    "successes",
    "samples",
    "lp_ema",
)
"""Fields of a label's stored aggregate. ``lp_ema`` is the EMA of the headline score of whatever
algorithm runs; the stored name stays, so that existing namespaces and exports load."""


class TaskRecord(BaseModel):
    """One task: the store's fields, then its algorithm's (``stored_fields()``) as extra float fields;
    ``label`` is the string behind ``label_hash``."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float] = Field(init=False)

    task_id: int = Field(ge=1)
    label: str
    label_hash: int
    slot: int = Field(ge=0)
    completions: int = Field(ge=0)
    score_sum: float
    last_score: float
    consecutive_failures: int = Field(ge=0)
    last_episode: int = Field(0, ge=0)

    def value(self, name: str) -> float:
        """A field of the task's algorithm (0.0 when the record does not hold it)."""
        return float((self.__pydantic_extra__ or {}).get(name, 0.0))

    def for_algorithm(self, fields: tuple[str, ...]) -> TaskRecord:
        """This record with exactly the algorithm fields ``fields``: missing ones are 0.0, and zeros of
        other algorithms are dropped (exports written when a record held every algorithm's fields)."""
        extra = self.__pydantic_extra__ or {}
        kept = {n: v for n, v in extra.items() if n in fields or v != 0.0}
        kept.update({n: extra.get(n, 0.0) for n in fields})
        return TaskRecord(**self.model_dump(exclude=set(extra)), **kept)


class LabelStats(BaseModel):
    """Aggregates of every task that ever carried one label (survive the tasks' eviction)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    created: int = 0
    evicted: int = 0
    active: int = 0
    completions: int = 0
    score_sum: float = 0.0
    successes: int = 0
    samples: int = 0
    lp_ema: float = 0.0


class StageTrack(BaseModel):
    """The stored stage state of a sequential curriculum, as Redis holds it: export and import copy it."""

    model_config = ConfigDict(extra="forbid")

    stage: dict[str, str] = Field(default_factory=dict)
    """The ``:stage`` hash: index, name, version, episode and success counts, timestamps."""
    window: list[int] = Field(default_factory=list)
    """The ``:stage:window`` list: the current stage's last outcomes (1 or 0), newest first."""
    history: dict[str, str] = Field(default_factory=dict)
    """The ``:stage:history`` hash: ``<stage index>:<field>`` -> value."""
    clients: dict[int, int] = Field(default_factory=dict)
    """The ``:stage:clients`` hash: client id -> sequence number of its last applied batch."""


class CurriculumState(BaseModel):
    """A whole namespace: hyperparameters, tasks, labels, label aggregates and counters."""

    model_config = ConfigDict(extra="forbid")

    format: str = STATE_FORMAT
    schema_version: int = SCHEMA_VERSION
    namespace: str
    hypers: SerializeAsAny[AlgorithmConfig]
    pool_version: int = 0
    tasks: list[TaskRecord] = Field(default_factory=list)
    labels: dict[int, str] = Field(default_factory=dict)
    label_stats: dict[int, LabelStats] = Field(default_factory=dict)
    counters: dict[str, int] = Field(default_factory=dict)
    client_seqs: dict[int, int] = Field(default_factory=dict)
    next_client_id: int = 0
    stage: StageTrack | None = None
    """The stage state of an algorithm whose state is stages (``None`` for a task pool)."""
    history: list[tuple[str, dict[str, str]]] = Field(default_factory=list)
    """The history stream's entries (id, fields), oldest first (see ``curriculum_redis.history``)."""
    history_labels: dict[str, str] = Field(default_factory=dict)
    """The per-label totals the next history entry starts from (``{cr:<ns>}:history:labels``)."""
    history_every: int | None = None
    """The namespace's history interval when one was set (``None``: the default)."""

    @field_validator("hypers", mode="before")
    @classmethod
    def _registered_algorithm(cls, value: Any) -> AlgorithmConfig:  # the config's own class
        return parse_config(value)

    @model_validator(mode="after")
    def _tasks_hold_their_algorithms_fields(self) -> CurriculumState:
        algorithm = pool_algorithms().get(self.hypers.algorithm)
        if algorithm is not None:
            fields = algorithm.stored_fields()
            self.tasks = [task.for_algorithm(fields) for task in self.tasks]
        return self
