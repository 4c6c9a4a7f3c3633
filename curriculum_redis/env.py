"""A Gymnasium wrapper that takes each episode's task from a curriculum and reports its score back.

Works with :class:`curriculum_redis.Curriculum` and :class:`curriculum_redis.StageCurriculum`
(anything with ``get_task()``, ``update_task_performance()`` and ``flush()``), in a single env or inside
``gymnasium.vector.SyncVectorEnv`` / ``AsyncVectorEnv``: the curriculum pickles (its config crosses,
the connection is made again in the worker), so an env factory may capture it.

Episode accounting:

- ``reset()`` draws a task, applies its ``env_cfg`` and resets the inner env.
- The episode is reported once, at the step that terminates or truncates it.
- An episode that is abandoned (``reset()`` called again before it ended, or the env closed) is **not**
  reported: its partial return says nothing about the task. :attr:`CurriculumEnv.abandoned_episodes`
  counts them.
- Steps after the end of an episode (without a reset) are passed through but never reported again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol, SupportsFloat, TypeVar

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

    ``info`` of every ``reset()`` and ``step()`` carries ``task_id`` and ``task_label``.
    """

    def __init__(
        self,
        env: gymnasium.Env[ObsType, ActType],
        curriculum: CurriculumLike,
        apply_task: ApplyTask | None = None,
        score_fn: ScoreFn | None = None,
        success_key: str | None = None,
    ) -> None:
        super().__init__(env)
        if score_fn is not None and success_key is not None:
            raise ConfigError("give score_fn or success_key, not both")
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
        self.apply_task = apply_task
        self.score_fn = score_fn
        self.success_key = success_key
        self.task: Task | None = None
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
                self.curriculum.update_task_performance(self.task.task_id, self._score(info))
                self.reported_episodes += 1
        return obs, reward, terminated, truncated, info

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
        try:
            score = float(raw)
        except (TypeError, ValueError) as exc:
            raise InvalidScoreError(f"episode score must be a real number, got {type(raw).__name__} {raw!r}") from exc
        if not math.isfinite(score):
            raise InvalidScoreError(f"episode score must be finite, got {score!r}")
        return score
