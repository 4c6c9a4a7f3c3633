"""The sequential curriculum: ordered stages, each left when its stop condition holds.

Its shared state is per stage, not per task (the store's ``stages`` shape): the current stage, the window of
its last outcomes and counts per stage. One atomic store call records a batch of episodes and decides
advancement (``lua/stage_record.lua`` on Redis; :func:`should_advance`, the same rule in Python, in memory),
so two processes never both advance a stage and no episode is lost between a check and an update.

Each episode is recorded for the stage it was *played in*, which travels in its task id
(:func:`stage_of_task`): an episode of a stage that is no longer current is counted as stale and never
enters the new stage's window. A process learns the current stage from each record reply and, between
them, on its refresh policy (one small read), so drawing a task needs no network round trip.

A stage advances when, after an episode of that stage, ``episodes >= min_episodes``, the window holds
``window`` outcomes and their success rate is ``>= advance_threshold``; or, for a stage with a
``stop_condition`` (see :mod:`curriculum_redis.conditions`), exactly when the condition holds on the stored
counts. The last stage never advances.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from curriculum_redis.algorithms.base import Algorithm, Shape
from curriculum_redis.conditions import evaluate
from curriculum_redis.config import CurriculumConfig, SequentialConfig
from curriculum_redis.errors import ConfigError, InvalidScoreError, StoreError
from curriculum_redis.stage_config import StageConfig, StageCurriculumConfig
from curriculum_redis.store.base import CurriculumStore, Outcome, RecordResult, StagePosition, StageState
from curriculum_redis.store.schema import MAX_STAGES, MAX_TASK_ID
from curriculum_redis.tasks import Task

__all__ = [
    "LOCAL_ID_LIMIT",
    "MAX_STAGES",
    "Sequential",
    "SequentialConfig",
    "Stage",
    "StageConfig",
    "StageCurriculumConfig",
    "StageView",
    "condition_values",
    "should_advance",
    "stage_label_table",
    "stage_of_task",
    "stage_stats",
]

log = logging.getLogger(__name__)

LOCAL_ID_LIMIT = (MAX_TASK_ID + 1) // MAX_STAGES
"""Local ids of generator stages are drawn from [1, LOCAL_ID_LIMIT): task ids stay below 2**53."""

LABEL_COLUMNS = ("episodes", "successes", "success_rate", "stale")


def stage_of_task(task_id: int) -> int:
    """The index of the stage a task of a sequential curriculum belongs to."""
    return task_id % MAX_STAGES


def condition_values(
    episodes: int, successes: int, window: int, window_successes: int, score_sum: float, seconds: float
) -> dict[str, float]:
    """The variables of a stop condition, computed as ``lua/stage_record.lua`` computes them."""
    return {
        "episodes": float(episodes),
        "successes": float(successes),
        "success": window_successes / window if window else 0.0,
        "window": float(window),
        "score": score_sum / episodes if episodes else 0.0,
        "seconds": seconds,
    }


def should_advance(stage: StageConfig, is_last: bool, values: Mapping[str, float]) -> bool:
    """The advance rule after an episode of ``stage`` (the Python mirror of ``lua/stage_record.lua``)."""
    if is_last:
        return False
    condition = stage.condition()
    if condition is not None:
        return evaluate(condition.program, values)
    return (
        values["episodes"] >= stage.min_episodes
        and values["window"] >= stage.window
        and values["success"] >= stage.advance_threshold
    )


def stage_stats(state: StageState, stages: list[StageConfig]) -> dict[str, float]:
    """Flat statistics of a stage curriculum (ready for wandb/tensorboard)."""
    n = state.num_stages
    out = {
        "stage/index": float(state.index),
        "stage/version": float(state.version),
        "stage/num_stages": float(n),
        "stage/progress": float(state.index / (n - 1)) if n > 1 else 1.0,
        "stage/episodes_in_stage": float(state.episodes_in_stage),
        "stage/window_fill": float(len(state.window)),
        "stage/window_size": float(state.window_size),
        "stage/window_success_rate": state.window_success_rate,
        "stage/successes_in_stage": float(state.successes_in_stage),
        "stage/score_mean": state.score_mean,
        "stage/advance_threshold": state.advance_threshold,
        "stage/recorded_episodes": float(state.recorded_episodes),
        "stage/stale_episodes": float(state.stale_episodes),
        "stage/duplicate_batches": float(state.duplicate_batches),
        "stage/advancements": float(state.advancements),
        "stage/resets": float(state.resets),
    }
    for name, row in stage_label_table(state, stages).items():
        out.update({f"stage/{name}/{column}": value for column, value in row.items()})
    return out


def stage_label_table(state: StageState, stages: list[StageConfig]) -> dict[str, dict[str, float]]:
    """Per stage (a stage's name is its tasks' label): episodes, successes, success rate, stale."""
    table = {}
    for i, stage in enumerate(stages):
        h = state.history.get(i, {})
        episodes, successes = h.get("episodes", 0.0), h.get("successes", 0.0)
        rate = successes / episodes if episodes else 0.0
        table[stage.name] = dict(zip(LABEL_COLUMNS, (episodes, successes, rate, h.get("stale", 0.0)), strict=True))
    return table


@dataclass(frozen=True)
class Stage:
    """The current stage as a process knows it."""

    index: int
    name: str
    version: int
    """Bumped at every advancement and every reset."""
    config: StageConfig


def check_score(score: Any) -> float:
    if isinstance(score, bool) or not isinstance(score, int | float | np.floating | np.integer):
        raise InvalidScoreError(f"score must be a real number, got {type(score).__name__} {score!r}")
    value = float(score)
    if not math.isfinite(value):
        raise InvalidScoreError(f"score must be finite, got {value!r}")
    return value


class StageView:
    """What one process knows of a stage curriculum: the current stage, from the last read or reply."""

    def __init__(self, config: CurriculumConfig, hypers: SequentialConfig, rng: np.random.Generator) -> None:
        self.hypers = hypers
        self._rng = rng
        self.position: StagePosition | None = None

    @property
    def ready(self) -> bool:
        return self.position is not None

    def refresh(self, store: CurriculumStore) -> None:
        self._install(store.stage_position())

    def _install(self, position: StagePosition) -> None:
        stages = self.hypers.stages
        if not 0 <= position.index < len(stages):
            raise StoreError(f"the namespace is at stage {position.index}, this config has {len(stages)} stages")
        if self.position is not None and position.index != self.position.index:
            log.info("stage curriculum at stage %d (%s)", position.index, stages[position.index].name)
        self.position = position

    def stage(self) -> Stage:
        assert self.position is not None
        index = self.position.index
        return Stage(index, self.hypers.stages[index].name, self.position.version, self.hypers.stages[index])

    def on_recorded(self, result: RecordResult) -> None:
        if result.stage is not None:
            self._install(result.stage)

    def draw(self) -> Task:
        """A task of the current stage; its id encodes the stage's index."""
        assert self.position is not None
        index = self.position.index
        cfg = self.hypers.stages[index]
        if cfg.task_generator is None:
            return Task(MAX_STAGES + index, cfg.name, copy.deepcopy(cfg.env_cfg or {}))
        local_id = int(self._rng.integers(1, LOCAL_ID_LIMIT))
        task = cfg.task_generator.get_task(local_id * MAX_STAGES + index)
        return Task(task.task_id, f"{cfg.name}/{task.label}", task.env_cfg)

    def check_index(self, stage_index: Any) -> int:
        if isinstance(stage_index, bool) or not isinstance(stage_index, int | np.integer):
            raise ConfigError(f"stage_index must be an int, got {type(stage_index).__name__} {stage_index!r}")
        index = int(stage_index)
        if not 0 <= index < len(self.hypers.stages):
            raise ConfigError(f"stage_index {index} is not a stage (0..{len(self.hypers.stages) - 1})")
        return index

    def episode(self, stage_index: Any, success: Any, score: Any = None) -> Outcome:
        """An episode of stage ``stage_index``; without a score, 1.0 for a success and 0.0 for a failure."""
        if not isinstance(success, bool | np.bool_):
            raise ConfigError(f"success must be a bool, got {type(success).__name__} {success!r}")
        value = (1.0 if success else 0.0) if score is None else check_score(score)
        index = self.check_index(stage_index)
        return Outcome(MAX_STAGES + index, 0, value, success=bool(success))

    def _stage_of(self, task_id: Any) -> int:
        if isinstance(task_id, bool) or not isinstance(task_id, int | np.integer):
            raise ConfigError(f"task_id must be an int, got {type(task_id).__name__} {task_id!r}")
        task_id = int(task_id)
        if not MAX_STAGES <= task_id <= MAX_TASK_ID or stage_of_task(task_id) >= len(self.hypers.stages):
            raise ConfigError(f"task_id {task_id} is not a task of this stage curriculum")
        return stage_of_task(task_id)

    def outcome(self, task_id: Any, score: Any) -> Outcome:
        """A success when ``score >= success_threshold`` of the task's stage; the raw score is kept."""
        index = self._stage_of(task_id)
        value = check_score(score)
        return Outcome(int(task_id), 0, value, success=value >= self.hypers.stages[index].success_threshold)

    def failure(self, task_id: Any) -> Outcome:
        """A task that could not be built counts as a failed episode of its stage."""
        self._stage_of(task_id)
        return Outcome(int(task_id), 0, 0.0, failed=True, success=False)

    def probabilities(self) -> dict[int, float]:
        """Tasks are drawn from the current stage only; there is no pool of scored tasks."""
        return {}

    def stats(self, store: CurriculumStore, last_counters: dict[str, int]) -> dict[str, float]:
        return stage_stats(store.stage_state(), self.hypers.stages)

    def label_table(self, store: CurriculumStore) -> dict[str, dict[str, float]]:
        return stage_label_table(store.stage_state(), self.hypers.stages)


class Sequential(Algorithm):
    """The sequential algorithm: the ``stages`` shape of the store, a :class:`StageView` per process."""

    name: ClassVar[str] = "sequential"
    shape: ClassVar[Shape] = "stages"
    config_class: ClassVar[type[SequentialConfig]] = SequentialConfig

    def view(self, config: CurriculumConfig, hypers: SequentialConfig, rng: np.random.Generator) -> StageView:
        return StageView(config, hypers, rng)
