"""curriculum_redis: a curriculum (learning progress and other algorithms) whose shared state lives in Redis."""

from curriculum_redis.algorithms.frontier import FrontierConfig
from curriculum_redis.algorithms.learnability import LearnabilityConfig
from curriculum_redis.algorithms.learning_progress import LearningProgressConfig
from curriculum_redis.algorithms.prioritized_replay import PrioritizedReplayConfig
from curriculum_redis.algorithms.sequential import SequentialConfig, StageConfig, StageCurriculumConfig
from curriculum_redis.algorithms.uniform import UniformConfig
from curriculum_redis.config import BufferConfig, CurriculumConfig, SamplerConfig
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.errors import (
    CheckpointError,
    ConfigError,
    CurriculumError,
    HyperparameterMismatchError,
    InvalidScoreError,
    ScriptError,
    StoreError,
    StoreUnavailableError,
)
from curriculum_redis.labels import label_hash
from curriculum_redis.stage_curriculum import StageCurriculum
from curriculum_redis.state import CurriculumState
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.tasks import (
    BucketedTaskGenerator,
    SingleTaskGenerator,
    Span,
    Task,
    TaskGenerator,
    TaskGeneratorSet,
)

__version__ = "0.1.0"

__all__ = [
    "BucketedTaskGenerator",
    "BufferConfig",
    "CheckpointError",
    "ConfigError",
    "Curriculum",
    "CurriculumConfig",
    "CurriculumError",
    "CurriculumState",
    "FrontierConfig",
    "HyperparameterMismatchError",
    "InvalidScoreError",
    "LearnabilityConfig",
    "LearningProgressConfig",
    "MemoryStore",
    "PrioritizedReplayConfig",
    "SamplerConfig",
    "ScriptError",
    "SequentialConfig",
    "SingleTaskGenerator",
    "Span",
    "StageConfig",
    "StageCurriculum",
    "StageCurriculumConfig",
    "StoreError",
    "StoreUnavailableError",
    "Task",
    "TaskGenerator",
    "TaskGeneratorSet",
    "UniformConfig",
    "__version__",
    "label_hash",
]
