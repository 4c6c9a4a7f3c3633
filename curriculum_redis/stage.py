"""The stage curriculum's names at their former import path, for modules that still import them here.

They live in :mod:`curriculum_redis.algorithms.sequential`, :mod:`curriculum_redis.curriculum` and
:mod:`curriculum_redis.store.stages`.
"""

from curriculum_redis.algorithms.sequential import (
    LOCAL_ID_LIMIT,
    MAX_STAGES,
    Stage,
    StageConfig,
    StageCurriculumConfig,
    stage_of_task,
)
from curriculum_redis.curriculum import StageCurriculum
from curriculum_redis.store.base import RecordResult as StageRecordResult
from curriculum_redis.store.base import StageState
from curriculum_redis.store.scripts import script_sources

__all__ = [
    "LOCAL_ID_LIMIT",
    "MAX_STAGES",
    "Stage",
    "StageConfig",
    "StageCurriculum",
    "StageCurriculumConfig",
    "StageRecordResult",
    "StageState",
    "script_sources",
    "stage_of_task",
]
