"""``StageCurriculum``: the sequential curriculum under the name and constructor its first users wrote.

It is the one :class:`~curriculum_redis.Curriculum` engine running the ``sequential`` algorithm, set to
write every episode at once and to read the current stage at every ``get_task()`` (one small read), so
every environment runs a new stage from its next reset on; it adds the stage operations the CLI and the
tests use. New code can write ``Curriculum(CurriculumConfig(algorithm=SequentialConfig(stages=[...])))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curriculum_redis.algorithms.sequential import SequentialConfig, Stage, StageView
from curriculum_redis.config import CurriculumConfig, build
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.errors import ConfigError, StoreError
from curriculum_redis.store.base import RecordResult, StageState
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.url import check_url

__all__ = ["StageCurriculum"]


class StageCurriculum(Curriculum):
    """A sequential curriculum built from its stages alone: ``StageCurriculum(stages, connection, namespace)``.

    ``connection`` is a store URL, a ``redis.Redis`` or a ``RedisCluster``; None keeps the state in memory.
    """

    def __init__(self, config: SequentialConfig, connection: Any = None, namespace: str = "default") -> None:
        if not isinstance(config, SequentialConfig):
            raise ConfigError(f"config must be a StageCurriculumConfig, got {type(config).__name__}")
        data = {"algorithm": config, "seed": config.seed, "namespace": namespace}
        data |= {"buffer": {"batch_size": 1}, "sampler": {"refresh_every_draws": 1}}
        if isinstance(connection, str):
            data["redis_url"] = check_url(connection)
        full = build(CurriculumConfig, data)
        client_store = None if connection is None or isinstance(connection, str) else RedisStore(connection, namespace)
        super().__init__(full, client_store)

    @classmethod
    def from_namespace(cls, connection: Any, namespace: str) -> StageCurriculum:
        """The stage curriculum stored in ``namespace``, with the stages stored there (for a process that
        does not have the config)."""
        store = RedisStore.from_url(connection, namespace) if isinstance(connection, str) else None
        store = store or RedisStore(connection, namespace)
        try:
            stored = store.read_hypers()
        finally:
            store.close()
        if not isinstance(stored, SequentialConfig):
            raise StoreError(f"namespace {namespace!r} holds no stage curriculum")
        return cls(stored, connection, namespace)

    @property
    def view(self) -> StageView:
        self._ensure_ready()
        assert isinstance(self._view, StageView)
        return self._view

    def current_stage(self) -> Stage:
        """The current stage, read now (the last one read while the store is unreachable)."""
        self._refresh_quietly()
        return self.view.stage()

    @property
    def pending_episodes(self) -> int:
        return self.pending_outcomes

    def state(self) -> StageState:
        """Everything stored, read atomically."""
        self._ensure_ready()
        self._flush_quietly()
        return self.store.stage_state()

    def record_episode(self, stage_index: int, success: bool) -> int:
        """Record one episode played in stage ``stage_index``; returns the current stage index."""
        position = self.record_episodes([(stage_index, success)]).stage
        assert position is not None
        return position.index

    def record_episodes(self, episodes: Sequence[tuple[Any, ...]]) -> RecordResult:
        """Record episodes ``(stage_index, success)`` or ``(stage_index, success, score)`` in order, in one
        atomic call. Raises StoreUnavailableError if the store is down (they stay buffered)."""
        if isinstance(episodes, str | bytes) or not isinstance(episodes, Sequence) or not episodes:
            raise ConfigError("episodes must be a non-empty sequence of (stage_index, success) pairs")
        if any(not isinstance(e, tuple | list) or len(e) not in (2, 3) for e in episodes):
            raise ConfigError("an episode is a (stage_index, success) pair or a (stage_index, success, score) triple")
        for outcome in [self.view.episode(*episode) for episode in episodes]:
            self._buffer.add(outcome)
        result = self._flush()
        assert result is not None
        return result

    def reset_to(self, stage_index: int) -> int:
        """Admin: go to stage ``stage_index`` with an empty window (version bumped). Episodes played in
        other stages and recorded afterwards are stale. Returns the index."""
        index = self.view.check_index(stage_index)
        self._flush_quietly()
        self.view.on_recorded(RecordResult(True, stage=self.store.reset_stage(index)))
        return index
