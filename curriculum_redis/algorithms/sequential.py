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
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from curriculum_redis.algorithms.base import Algorithm, Shape
from curriculum_redis.conditions import Condition, compile_condition, evaluate
from curriculum_redis.config import AlgorithmConfig, CurriculumConfig
from curriculum_redis.errors import ConfigError, InvalidScoreError, StoreError
from curriculum_redis.store.base import CurriculumStore, Outcome, RecordResult, StagePosition, StageState
from curriculum_redis.store.schema import MAX_STAGES, MAX_TASK_ID
from curriculum_redis.tasks import Task, TaskGenerator

__all__ = [
    "LOCAL_ID_LIMIT",
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


class StageConfig(BaseModel):
    """One stage: what to play (a fixed ``env_cfg`` or a ``task_generator``) and when to leave it.

    Attributes:
        name: unique within the curriculum; it is the label of the stage's tasks.
        env_cfg: the environment config of every task of the stage (``{}`` when neither is given).
        task_generator: draws the stage's tasks instead (any :class:`~curriculum_redis.TaskGenerator`);
            task labels are then ``"<name>/<generator label>"``.
        advance_threshold: success rate over the window needed to advance.
        window: W, the number of last episodes of the stage the success rate is measured on.
        min_episodes: episodes of the stage needed before it may advance (the window being full
            already requires W).
        success_threshold: ``update_task_performance(task_id, score)`` counts ``score >=
            success_threshold`` as a success (scores are used raw; use ``success_key`` in
            :class:`~curriculum_redis.env.CurriculumEnv` to report 1.0/0.0).
        stop_condition: when set, e.g. ``"episodes>=500 & success>0.8"``, the stage advances exactly when
            it holds after an episode, instead of the ``advance_threshold``/``min_episodes`` rule (``window``
            still sets the window that ``success`` and ``window`` are measured on). Variables: episodes,
            successes, success, window, score, seconds; see :mod:`curriculum_redis.conditions`. Checked
            when the config is built (a :class:`pydantic.ValidationError` naming the position).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    env_cfg: dict[str, Any] | None = None
    task_generator: SerializeAsAny[TaskGenerator] | None = None
    advance_threshold: float = Field(0.8, ge=0.0, le=1.0)
    window: int = Field(100, ge=1, le=1_000_000)
    min_episodes: int = Field(0, ge=0)
    success_threshold: float = Field(0.5, allow_inf_nan=False)
    stop_condition: str | None = Field(None, min_length=1)

    @field_validator("task_generator", mode="before")
    @classmethod
    def _build_generator(cls, value: Any) -> TaskGenerator | None:
        return None if value is None else TaskGenerator.from_data(value)

    @field_validator("stop_condition")
    @classmethod
    def _check_condition(cls, value: str | None) -> str | None:
        if value is not None:
            compile_condition(value)  # ConditionError (a ValueError) names the position
        return value

    def condition(self) -> Condition | None:
        """The compiled ``stop_condition`` (None without one)."""
        return None if self.stop_condition is None else compile_condition(self.stop_condition)

    def reads_seconds(self) -> bool:
        """Whether the stop condition reads ``seconds``: only then does the stage keep a clock."""
        condition = self.condition()
        return condition is not None and ("var", "seconds") in condition.program

    @model_validator(mode="after")
    def _one_source(self) -> StageConfig:
        if self.env_cfg is not None and self.task_generator is not None:
            raise ValueError(f"stage {self.name!r}: give env_cfg or task_generator, not both")
        return self


class SequentialConfig(AlgorithmConfig):
    """Ordered stages, each left when its stop condition (or threshold rule) holds: the sequential
    curriculum, chosen by ``CurriculumConfig(algorithm=SequentialConfig(stages=[...]))``. Refuses unknown
    fields; round-trips through JSON."""

    SAFE: ClassVar[frozenset[str]] = frozenset({"seed"})
    """The seed only shapes this process's draws; the stages' fingerprint leaves it out."""

    algorithm: Literal["sequential"] = "sequential"
    stages: list[StageConfig] = Field(min_length=1, max_length=MAX_STAGES)
    seed: int = 0

    @model_validator(mode="after")
    def _unique_names(self) -> SequentialConfig:
        names = [stage.name for stage in self.stages]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"stage names must be unique, repeated: {', '.join(duplicates)}")
        return self

    def stages_json(self) -> str:
        """The stages as canonical JSON: what is stored in Redis and fingerprinted."""
        # A stage without a stop condition leaves the field out, so that the fingerprints stored by
        # namespaces whose stages have none still match.
        data = [
            stage.model_dump(mode="json", exclude={"stop_condition"} if stage.stop_condition is None else None)
            for stage in self.stages
        ]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def differences(self, other: Self) -> dict[str, tuple[Any, Any]]:
        """What differs, stage by stage, as ``{"stage <i> <field>": (self's, other's)}``: the base's
        comparison, keyed finely enough to name the stage. ``seed`` never counts: it only seeds each
        process's draws of generated tasks."""
        mine, theirs = json.loads(self.stages_json()), json.loads(other.stages_json())
        out: dict[str, tuple[Any, Any]] = {}
        if len(mine) != len(theirs):
            out["number of stages"] = (len(mine), len(theirs))
        for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    out[f"stage {i} {name}"] = (a.get(name), b.get(name))
        return out

    def fingerprint(self) -> str:
        """Identifies the stages (everything but ``seed``): processes sharing a namespace must agree."""
        return hashlib.sha256(self.stages_json().encode()).hexdigest()[:16]


StageCurriculumConfig = SequentialConfig
"""The name :class:`~curriculum_redis.stage_curriculum.StageCurriculum` takes its stages under; the same class."""


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

    counts_draws = False

    def __init__(self, hypers: SequentialConfig, rng: np.random.Generator) -> None:
        self.hypers = hypers
        self._rng = rng
        self.position: StagePosition | None = None

    @property
    def ready(self) -> bool:
        return self.position is not None

    def refresh(self, store: CurriculumStore) -> None:
        self._install(store.stage_position())

    def load(self, store: CurriculumStore) -> None:
        self.refresh(store)

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

    def current_probabilities(self, store: CurriculumStore) -> dict[int, float]:
        return {}

    def stats(self, store: CurriculumStore, last_counters: dict[str, int] | None = None) -> dict[str, float]:
        return stage_stats(store.stage_state(), self.hypers.stages)

    def label_table(self, store: CurriculumStore) -> dict[str, dict[str, float]]:
        return stage_label_table(store.stage_state(), self.hypers.stages)


class Sequential(Algorithm):
    """The sequential algorithm: the ``stages`` shape of the store, a :class:`StageView` per process."""

    name: ClassVar[str] = "sequential"
    shape: ClassVar[Shape] = "stages"
    config_class: ClassVar[type[SequentialConfig]] = SequentialConfig

    def view(self, hypers: Any, rng: np.random.Generator, config: CurriculumConfig | None = None) -> StageView:
        return StageView(hypers, rng)
