"""Stores of shared curriculum state: one protocol, an in-process and a Redis implementation."""

from curriculum_redis.store.base import CurriculumStore, Eviction, Outcome, OutcomeBatch, ScoreSnapshot
from curriculum_redis.store.memory import MemoryStore

__all__ = ["CurriculumStore", "Eviction", "MemoryStore", "Outcome", "OutcomeBatch", "ScoreSnapshot"]
