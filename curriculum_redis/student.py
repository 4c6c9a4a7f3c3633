"""Moved to :mod:`curriculum_redis.demo.student`; this alias serves the importers not yet switched
(deleted at integration)."""

from curriculum_redis.demo.student import (
    KINDS,
    LABEL_PREFIX,
    SimulatedStudent,
    StudentParams,
    TaskKind,
    label_kind,
    student_task_generator,
    task_kind,
    train_uniform,
)

__all__ = [
    "KINDS",
    "LABEL_PREFIX",
    "SimulatedStudent",
    "StudentParams",
    "TaskKind",
    "label_kind",
    "student_task_generator",
    "task_kind",
    "train_uniform",
]
