"""The configs of a stage curriculum: ordered stages and the rule that ends each one.

Kept apart from :mod:`curriculum_redis.stage` (which talks to Redis) so that
:class:`~curriculum_redis.config.CurriculumConfig` can name a sequential curriculum without importing a store.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from curriculum_redis.conditions import Condition, compile_condition
from curriculum_redis.tasks import TaskGenerator

MAX_STAGES = 1024
"""Task ids are ``local_id * MAX_STAGES + stage_index``: the stage an episode was played in travels
with its task id, so ``update_task_performance(task_id, score)`` needs no per-process bookkeeping."""


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


class StageCurriculumConfig(BaseModel):
    """The ordered stages of a curriculum. Refuses unknown fields; round-trips through JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[StageConfig] = Field(min_length=1, max_length=MAX_STAGES)
    seed: int = 0

    @model_validator(mode="after")
    def _unique_names(self) -> StageCurriculumConfig:
        names = [stage.name for stage in self.stages]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"stage names must be unique, repeated: {', '.join(duplicates)}")
        return self

    def stages_json(self) -> str:
        """The stages as canonical JSON: what is stored in Redis and fingerprinted."""
        # A stage without a stop condition dumps as before it existed: stored fingerprints stay valid.
        data = [
            stage.model_dump(mode="json", exclude={"stop_condition"} if stage.stop_condition is None else None)
            for stage in self.stages
        ]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def differences(self, other: StageCurriculumConfig) -> dict[str, tuple[Any, Any]]:
        """What differs, stage by stage, as ``{"stage <i> <field>": (self's, other's)}``. ``seed`` never
        counts: it only seeds each process's draws of generated tasks."""
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
