"""The sequential curriculum behind the :class:`~curriculum_redis.Curriculum` API.

``CurriculumConfig(algorithm=SequentialConfig(stages=[...]))`` names ordered stages, each left when its stop
condition holds. Its state is per stage, so it runs on the stage engine (:mod:`curriculum_redis.stage`:
one Lua call records an episode and decides advancement), and this class gives it the methods a worker calls
on any curriculum, so switching algorithms is a change of config only.
"""

from __future__ import annotations

from typing import Any

from curriculum_redis.config import CurriculumConfig, MismatchPolicy, SequentialConfig
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.errors import ConfigError, CurriculumError
from curriculum_redis.stage import StageCurriculum, stage_of_task
from curriculum_redis.state import CurriculumState
from curriculum_redis.store.base import CurriculumStore
from curriculum_redis.tasks import Task


class SequentialCurriculum(Curriculum):
    """What ``Curriculum(config)`` returns when ``config.algorithm`` is a :class:`SequentialConfig`."""

    def __init__(self, config: CurriculumConfig, store: CurriculumStore | None = None) -> None:
        if not isinstance(config.algorithm, SequentialConfig):
            raise ConfigError("SequentialCurriculum needs config.algorithm to be a SequentialConfig")
        if store is not None:
            raise ConfigError("a sequential curriculum keeps its state in Redis: give redis_url, not a store")
        if config.redis_url is None:
            raise ConfigError("a sequential curriculum needs redis_url (its stages advance on the Redis server)")
        self.config = config
        self.stages = StageCurriculum(config.algorithm, config.redis_url, config.namespace)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def close(self) -> None:
        self.stages.close()

    def get_task(self) -> Task:
        return self.stages.get_task()

    def update_task_performance(self, task_id: int, score: float) -> None:
        self.stages.update_task_performance(task_id, score)

    def report_task_failure(self, task_id: int) -> None:
        """A task that could not be built counts as a failed episode of its stage."""
        self.stages.record_episode(stage_of_task(task_id), False)

    def flush(self) -> None:
        self.stages.flush()

    def refresh(self) -> None:
        """Nothing to refresh: every ``get_task()`` reads the current stage."""

    @property
    def pending_outcomes(self) -> int:
        return self.stages.pending_episodes

    @property
    def dropped_outcomes(self) -> int:
        return self.stages.dropped_episodes

    def probabilities(self) -> dict[int, float]:
        """Tasks are drawn from the current stage only; there is no pool of scored tasks."""
        return {}

    def stats(self) -> dict[str, float]:
        return self.stages.stats()

    def label_table(self) -> dict[str, dict[str, float]]:
        """Per stage (a stage's name is its tasks' label): episodes, successes, success rate, stale."""
        stats = self.stages.stats()
        columns = ("episodes", "successes", "success_rate", "stale")
        return {
            stage.name: {column: stats.get(f"stage/{stage.name}/{column}", 0.0) for column in columns}
            for stage in self.stages.config.stages
        }

    def get_state(self) -> CurriculumState:
        raise CurriculumError(
            "a sequential curriculum's state is its stage keys in Redis: checkpoint it with Redis persistence "
            "(curriculum-redis snapshot); get_state/load_state cover task-pool algorithms"
        )

    def load_state(self, state: CurriculumState, on_mismatch: MismatchPolicy | None = None) -> None:
        self.get_state()

    @property
    def client_id(self) -> int:
        client_id: int = self.stages._client_id
        return client_id
