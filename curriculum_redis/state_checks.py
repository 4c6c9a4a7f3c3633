"""Semantic checks of a state before it is imported: a checksum proves a file is intact, not that it is sane.

A hostile or hand-edited export can hold a task id the samplers cannot draw, a counter the scripts' next
``HINCRBY`` overflows, a label hash that is not its label's, or an EMA outside [0, 1]; imported, each
breaks every later call. :func:`semantic_problem` names the first such value, so nothing is written.
"""

from __future__ import annotations

from curriculum_redis.config import PoolConfig
from curriculum_redis.labels import label_hash
from curriculum_redis.state import CurriculumState, TaskRecord
from curriculum_redis.store.schema import MAX_TASK_ID

__all__ = ["COUNT_LIMIT", "semantic_problem"]

COUNT_LIMIT = 2**53
"""Every stored count stays below this: exact as a double (Lua's numbers), far from HINCRBY's 2^63 - 1."""

UNIT_FIELD_PREFIXES = ("p_",)
UNIT_FIELD_SUFFIXES = ("_ema",)
"""Algorithm state fields that are probabilities or EMAs of scores in [0, 1]."""
NON_NEGATIVE_FIELDS = frozenset({"lp"})
"""Fields that are never negative (learning progress is an absolute difference of two EMAs)."""


def _count(name: str, value: int) -> str | None:
    if not 0 <= value < COUNT_LIMIT:
        return f"{name} is {value}, outside [0, 2^53)"
    return None


def _task_problem(task: TaskRecord, capacity: int) -> str | None:
    where = f"task {task.task_id}"
    if not 1 <= task.task_id <= MAX_TASK_ID:
        return f"{where}: task id outside [1, 2^53 - 1]"
    if task.slot >= capacity:
        return f"{where}: slot {task.slot} outside a pool of {capacity}"
    for name in ("completions", "consecutive_failures", "last_episode"):
        problem = _count(f"{where}: {name}", getattr(task, name))
        if problem:
            return problem
    if not 0.0 <= task.last_score <= 1.0:
        return f"{where}: last_score {task.last_score} outside [0, 1]"
    if not 0.0 <= task.score_sum <= task.completions:
        return f"{where}: score_sum {task.score_sum} outside [0, completions={task.completions}]"
    for name, value in (task.model_extra or {}).items():
        unit = name.startswith(UNIT_FIELD_PREFIXES) or name.endswith(UNIT_FIELD_SUFFIXES)
        if unit and not 0.0 <= value <= 1.0:
            return f"{where}: {name}={value} outside [0, 1]"
        if name in NON_NEGATIVE_FIELDS and value < 0.0:
            return f"{where}: {name}={value} is negative"
    return None


def _numbers_problem(where: str, fields: dict[str, str]) -> str | None:
    """Stored counts and times are numbers the scripts increment: each numeric value in [0, 2^53)."""
    for name, raw in fields.items():
        try:
            value = float(raw)
        except ValueError:
            continue  # a name, not a number
        if not 0.0 <= value < COUNT_LIMIT:  # also refuses nan and inf
            return f"{where} {name} is {raw}, outside [0, 2^53)"
    return None


def _stage_problem(state: CurriculumState) -> str | None:
    track = state.stage
    if track is None:
        return None
    if any(x not in (0, 1) for x in track.window):
        return "the stage window holds values other than 0 and 1"
    problem = _numbers_problem("stage", track.stage) or _numbers_problem("stage history", track.history)
    for client, seq in track.clients.items():
        problem = problem or _count(f"stage client id {client}", client) or _count(f"stage seq of {client}", seq)
    return problem


def semantic_problem(state: CurriculumState) -> str | None:
    """The first value of ``state`` that a real namespace cannot hold, or None."""
    problem = _count("pool_version", state.pool_version) or _count("next_client_id", state.next_client_id)
    problem = problem or _stage_problem(state) or _numbers_problem("history label total", state.history_labels)
    for name, value in state.counters.items():
        problem = problem or _count(f"counter {name}", value)
    for client, seq in state.client_seqs.items():
        problem = problem or _count(f"client id {client}", client) or _count(f"seq of client {client}", seq)
    if problem:
        return problem
    for h, label in state.labels.items():
        if label_hash(label) != h:
            return f"label {label!r} is stored under hash {h}, but its hash is {label_hash(label)}"
    if not isinstance(state.hypers, PoolConfig):
        return None
    capacity = state.hypers.num_active_tasks
    slots: set[int] = set()
    active: dict[int, int] = {}
    for task in state.tasks:
        problem = _task_problem(task, capacity)
        if problem:
            return problem
        if task.slot in slots:
            return f"task {task.task_id}: slot {task.slot} holds another task too"
        slots.add(task.slot)
        active[task.label_hash] = active.get(task.label_hash, 0) + 1
    for h, stats in state.label_stats.items():
        where = f"label {stats.label!r}"
        for name in ("created", "evicted", "active", "completions", "successes", "samples"):
            problem = problem or _count(f"{where}: {name}", getattr(stats, name))
        if problem:
            return problem
        if stats.active != active.get(h, 0):
            return f"{where}: active={stats.active}, but {active.get(h, 0)} of its tasks are in the pool"
        if stats.successes > stats.completions:
            return f"{where}: {stats.successes} successes out of {stats.completions} completions"
    if "num_created" in state.counters:
        pooled = state.counters["num_created"] - state.counters.get("num_evicted", 0)
        if pooled != len(state.tasks):
            return f"num_created - num_evicted = {pooled}, but the state holds {len(state.tasks)} tasks"
    return None
