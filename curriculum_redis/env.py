"""A Gymnasium wrapper that takes each episode's task from a curriculum and reports its score back.

Works with :class:`curriculum_redis.Curriculum` and :class:`curriculum_redis.StageCurriculum`
(anything with ``get_task()``, ``update_task_performance()`` and ``flush()``), in a single env or inside
``gymnasium.vector.SyncVectorEnv`` / ``AsyncVectorEnv``: the curriculum pickles (its config crosses,
the connection is made again in the worker), so an env factory may capture it.

Episode accounting:

- ``reset()`` draws a task, applies its ``env_cfg`` and resets the inner env.
- The episode is reported once: at the step that terminates or truncates it (``score_when="step"``, the
  default), or, with ``score_when="learner"``, when the learner calls :meth:`CurriculumEnv.report_score`
  (or passes ``options={"curriculum_score": x}`` to the next ``reset()``) after it has seen the last
  transition: learner-derived scores such as a value loss (what prioritized replay needs) need that. An
  ended episode whose score never came is not reported; :attr:`CurriculumEnv.unscored_episodes` counts them.
- An episode that is abandoned (``reset()`` called again before it ended, or the env closed) is **not**
  reported: its partial return says nothing about the task. :attr:`CurriculumEnv.abandoned_episodes`
  counts them.
- Steps after the end of an episode (without a reset) are passed through but never reported again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Literal, Protocol, SupportsFloat, TypeVar

import gymnasium

from curriculum_redis.errors import ConfigError, InvalidScoreError, StoreUnavailableError
from curriculum_redis.tasks import Task

__all__ = ["CurriculumEnv", "CurriculumLike"]

log = logging.getLogger(__name__)

ObsType = TypeVar("ObsType")
ActType = TypeVar("ActType")


class CurriculumLike(Protocol):
    """What :class:`CurriculumEnv` needs from a curriculum."""

    def get_task(self) -> Task: ...

    def update_task_performance(self, task_id: int, score: float) -> None: ...

    def flush(self) -> None: ...


ApplyTask = Callable[[gymnasium.Env[Any, Any], Task], None]
ScoreFn = Callable[[float, dict[str, Any]], SupportsFloat]
ScoreWhen = Literal["step", "learner"]
SCORE_OPTION = "curriculum_score"
"""The ``reset()`` option that carries the previous episode's score when ``score_when="learner"``."""


class CurriculumEnv(gymnasium.Wrapper[ObsType, ActType, ObsType, ActType]):
    """Runs every episode on a task drawn from ``curriculum`` and reports the episode's score.

    Args:
        env: the environment to wrap.
        curriculum: a :class:`~curriculum_redis.Curriculum`, a
            :class:`~curriculum_redis.StageCurriculum`, or any :class:`CurriculumLike`.
        apply_task: ``apply_task(env, task)`` configures ``env`` for ``task`` before each reset.
            Without it, ``env.unwrapped.set_task(task.env_cfg)`` is called.
        score_fn: ``score_fn(total_return, final_info) -> score``; by default the score is the
            episode's return. Mind the curriculum's ``score_range``: scores are normalised with it.
        success_key: report ``float(final_info[success_key])`` (e.g. ``"is_success"`` or
            ``"success"``) instead of the return. Exclusive with ``score_fn``.
        score_when: ``"step"`` reports at the last step (with ``score_fn``, ``success_key`` or the
            return); ``"learner"`` waits for :meth:`report_score` or the next ``reset()``'s
            ``options={"curriculum_score": x}``, so the score can come from the learner's update on the
            whole episode. ``score_fn`` and ``success_key`` do not apply then.

    ``info`` of every ``reset()`` and ``step()`` carries ``task_id`` and ``task_label``.
    """

    def __init__(
        self,
        env: gymnasium.Env[ObsType, ActType],
        curriculum: CurriculumLike,
        apply_task: ApplyTask | None = None,
        score_fn: ScoreFn | None = None,
        success_key: str | None = None,
        score_when: ScoreWhen = "step",
    ) -> None:
        super().__init__(env)
        if score_fn is not None and success_key is not None:
            raise ConfigError("give score_fn or success_key, not both")
        if score_when not in ("step", "learner"):
            raise ConfigError(f"score_when must be 'step' or 'learner', got {score_when!r}")
        if score_when == "learner" and (score_fn is not None or success_key is not None):
            raise ConfigError("score_when='learner' takes the score from report_score(): drop score_fn/success_key")
        if success_key is not None and (not isinstance(success_key, str) or not success_key):
            raise ConfigError(f"success_key must be a non-empty string, got {success_key!r}")
        for name, fn in (("apply_task", apply_task), ("score_fn", score_fn)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be callable, got {type(fn).__name__}")
        if apply_task is None and not callable(getattr(env.unwrapped, "set_task", None)):
            raise ConfigError(
                f"{type(env.unwrapped).__name__} has no set_task(env_cfg) method: pass "
                "apply_task=lambda env, task: ... to tell CurriculumEnv how to configure it for a task"
            )
        self.curriculum = curriculum
        if score_when == "step" and score_fn is None:
            from curriculum_redis.algorithms.prioritized_replay import warn_if_return_score

            warn_if_return_score(getattr(curriculum, "hypers", None), "return" if success_key is None else "success")
        self.apply_task = apply_task
        self.score_fn = score_fn
        self.success_key = success_key
        self.score_when: ScoreWhen = score_when
        self.task: Task | None = None
        self.unscored_episodes = 0
        self._awaiting: Task | None = None
        self.episode_return = 0.0
        self.episode_length = 0
        self.reported_episodes = 0
        self.abandoned_episodes = 0
        self._episode_open = False

    # -- gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        if self._episode_open:
            # Documented: an unfinished episode is dropped, never reported.
            self.abandoned_episodes += 1
        self._episode_open = False
        options = dict(options) if options else None
        if options is not None and SCORE_OPTION in options:
            self.report_score(options.pop(SCORE_OPTION))
        if self._awaiting is not None:
            self.unscored_episodes += 1
            self._awaiting = None
        task = self.curriculum.get_task()
        self._apply(task)
        self.task = task
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_return = 0.0
        self.episode_length = 0
        self._episode_open = True
        return obs, self._tagged(info)

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.task is None:
            raise RuntimeError("CurriculumEnv.step() called before reset()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = self._tagged(info)
        if self._episode_open:
            self.episode_return += float(reward)
            self.episode_length += 1
            if terminated or truncated:
                self._episode_open = False
                if self.score_when == "learner":
                    self._awaiting = self.task
                else:
                    self.curriculum.update_task_performance(self.task.task_id, self._score(info))
                    self.reported_episodes += 1
        return obs, reward, terminated, truncated, info

    def report_score(self, score: SupportsFloat) -> None:
        """Report the score of the episode that just ended (``score_when="learner"``), once.

        Call it after the learner has seen the episode's last transition and before the next ``reset()``.
        """
        if self.score_when != "learner":
            raise RuntimeError("report_score() needs CurriculumEnv(..., score_when='learner'); this env reports "
                               "each episode at its last step")  # fmt: skip
        if self._awaiting is None:
            raise RuntimeError("report_score(): no ended episode awaits a score (it was reported already, or the "
                               "episode has not ended yet)")  # fmt: skip
        value = self._checked(score)
        task, self._awaiting = self._awaiting, None
        self.curriculum.update_task_performance(task.task_id, value)
        self.reported_episodes += 1

    def close(self) -> None:
        """Write what the curriculum buffers, then close the inner env. The open episode, if any,
        is not reported."""
        try:
            self.curriculum.flush()
        except StoreUnavailableError as exc:
            log.warning("curriculum store unreachable at close, buffered outcomes not written: %s", exc)
        finally:
            super().close()

    # -- helpers ---------------------------------------------------------------------------------

    def _apply(self, task: Task) -> None:
        if self.apply_task is not None:
            self.apply_task(self.env, task)
            return
        set_task = getattr(self.env.unwrapped, "set_task", None)
        if not callable(set_task):
            raise ConfigError(
                f"{type(self.env.unwrapped).__name__} has no set_task(env_cfg) method and no apply_task was given"
            )
        set_task(task.env_cfg)

    def _tagged(self, info: dict[str, Any]) -> dict[str, Any]:
        assert self.task is not None
        out = dict(info)
        out["task_id"] = self.task.task_id
        out["task_label"] = self.task.label
        return out

    def _score(self, info: dict[str, Any]) -> float:
        if self.success_key is not None:
            if self.success_key not in info:
                raise KeyError(
                    f"CurriculumEnv(success_key={self.success_key!r}): the final info of the episode has no "
                    f"{self.success_key!r} (keys: {sorted(info)})"
                )
            raw: Any = info[self.success_key]
        elif self.score_fn is not None:
            raw = self.score_fn(self.episode_return, info)
        else:
            raw = self.episode_return
        return self._checked(raw)

    @staticmethod
    def _checked(raw: Any) -> float:
        try:
            score = float(raw)
        except (TypeError, ValueError) as exc:
            raise InvalidScoreError(f"episode score must be a real number, got {type(raw).__name__} {raw!r}") from exc
        if not math.isfinite(score):
            raise InvalidScoreError(f"episode score must be finite, got {score!r}")
        return score
