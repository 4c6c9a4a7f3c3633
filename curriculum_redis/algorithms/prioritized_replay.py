"""Prioritized level replay (Jiang, Grefenstette, Rocktäschel, ICML 2021) on the shared pool.

Per task the trainer reports a score (e.g. the mean absolute GAE of the episode; any float, normalised
with ``score_range``), which replaces the task's score or is averaged into it (``score_update``).

**The score must be a learning signal, not the return**: PLR replays the tasks with the *highest* score, so
a success flag or raw return makes it replay solved tasks. Report the episode's mean absolute value loss
(or TD/GAE error), computed by the learner after it has seen the last transition: with
``CurriculumEnv(..., score_when="learner")`` call ``env.report_score(value_loss)`` after the episode (see
:func:`warn_if_return_score`, which ``CurriculumEnv`` calls when a PLR curriculum gets the return).
Sampling, over the seen tasks (at least one outcome):

- rank prioritisation: ``h_i = 1 / rank_i`` (rank 1 = highest score), ``P_S ∝ h_i^(1/β)``;
- staleness: ``P_C ∝ c − C_i``, ``c`` the namespace's global episode count (kept in Redis), ``C_i`` the
  global count at task ``i``'s last *recorded* episode. The paper stamps ``C_i`` when a level is sampled;
  here sampling is local to each process (no network on the hot path), so the last recorded episode is
  the shared stamp;
- ``P_replay = (1 − ρ) P_S + ρ P_C``.

The replay decision: with probability ``p_replay`` a seen task is drawn from ``P_replay``, else an unseen
task uniformly; ``p_replay`` is ``seen / total`` (``proportionate``) or ``replay_probability`` (``fixed``),
and 1 (0) when no task is unseen (seen). The result is one distribution over the pool.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from curriculum_redis.algorithms.base import FloatArray, PoolAlgorithm
from curriculum_redis.config import PoolConfig

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot


class PrioritizedReplayConfig(PoolConfig):
    """Prioritized level replay (Jiang et al., ICML 2021): rank-prioritised scores mixed with staleness."""

    SAFE: ClassVar[frozenset[str]] = PoolConfig.SAFE | {
        "temperature", "staleness_coef", "replay_schedule", "replay_probability",
    }

    algorithm: Literal["prioritized_replay"] = "prioritized_replay"
    score_update: Literal["replace", "ema"] = "replace"
    """How a task's score takes a new reported value: replaced by it, or averaged with ``score_ema_alpha``."""
    score_ema_alpha: float = Field(0.1, gt=0.0, le=1.0)
    temperature: float = Field(0.1, gt=0.0)
    """beta: ``P_S ∝ (1/rank)^(1/beta)``."""
    staleness_coef: float = Field(0.1, ge=0.0, le=1.0)
    """rho: ``P = (1 - rho) P_S + rho P_C``."""
    replay_schedule: Literal["proportionate", "fixed"] = "proportionate"
    replay_probability: float = Field(0.5, ge=0.0, le=1.0)
    """The ``fixed`` schedule's probability of replaying a seen task (``proportionate``: seen / total)."""
    tracker_ema_alpha: float = Field(0.02, gt=0.0, le=1.0)


def warn_if_return_score(hypers: object, score_source: str) -> None:
    """Warn when a PLR curriculum is fed ``score_source`` ('return' or 'success'), not a learner's loss."""
    if getattr(hypers, "algorithm", None) != "prioritized_replay" or score_source not in ("return", "success"):
        return
    warnings.warn(
        f"prioritized_replay gets the episode's {score_source} as its score, so it replays the tasks that "
        "already succeed most. Give it a learning signal such as the episode's mean absolute value loss: "
        "CurriculumEnv(..., score_when='learner') and env.report_score(loss) after the episode.",
        UserWarning,
        stacklevel=3,
    )


def rank_weights(scores: FloatArray, temperature: float) -> FloatArray:
    """``P_S``: ``(1/rank)^(1/β)`` normalised; rank 1 is the highest score, ties ranked in pool order."""
    if scores.size == 0:
        return np.zeros(0)
    ranks = np.empty(scores.size)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, scores.size + 1)
    w = (1.0 / ranks) ** (1.0 / temperature)
    return np.asarray(w / w.sum(), dtype=np.float64)


def staleness_weights(last_episode: FloatArray, clock: float) -> FloatArray:
    """``P_C ∝ c − C_i``; uniform when every task is equally fresh."""
    if last_episode.size == 0:
        return np.zeros(0)
    stale = np.maximum(clock - last_episode, 0.0)
    total = float(stale.sum())
    if total <= 0.0:
        return np.full(stale.size, 1.0 / stale.size)
    return np.asarray(stale / total, dtype=np.float64)


def replay_probability(n_seen: int, n_total: int, cfg: PrioritizedReplayConfig) -> float:
    if n_seen == 0:
        return 0.0
    if n_seen == n_total:
        return 1.0
    if cfg.replay_schedule == "proportionate":
        return n_seen / n_total
    return cfg.replay_probability


def plr_distribution(
    completions: FloatArray, score: FloatArray, last_episode: FloatArray, clock: float, cfg: PrioritizedReplayConfig
) -> FloatArray:
    n = score.size
    if n == 0:
        return np.zeros(0)
    seen = np.asarray(completions) > 0
    n_seen = int(seen.sum())
    p_replay = replay_probability(n_seen, n, cfg)
    probs = np.zeros(n)
    if n_seen:
        rho = cfg.staleness_coef
        replay = (1.0 - rho) * rank_weights(score[seen], cfg.temperature) + rho * staleness_weights(
            last_episode[seen], clock
        )
        probs[seen] = p_replay * replay
    if n_seen < n:
        probs[~seen] = (1.0 - p_replay) / (n - n_seen)
    return np.asarray(probs / probs.sum(), dtype=np.float64)


class PrioritizedReplay(PoolAlgorithm):
    name = "prioritized_replay"
    config_class = PrioritizedReplayConfig
    score_field = "score"
    state_fields = ("success_ema",)

    def meta_fields(self, cfg: PrioritizedReplayConfig) -> dict[str, str]:
        return {
            "score_update": cfg.score_update,
            "score_ema_alpha": repr(float(cfg.score_ema_alpha)),
            "tracker_ema_alpha": repr(float(cfg.tracker_ema_alpha)),
        }

    def update(
        self, state: dict[str, float], x: float, success: float, cfg: PrioritizedReplayConfig, clock: int
    ) -> float:
        if state["completions"] == 0:
            state["score"] = x
            state["success_ema"] = success
        else:
            if cfg.score_update == "replace":
                state["score"] = x
            else:
                state["score"] = state["score"] + cfg.score_ema_alpha * (x - state["score"])
            state["success_ema"] = state["success_ema"] + cfg.tracker_ema_alpha * (success - state["success_ema"])
        return state["score"]

    def distribution(self, snapshot: ScoreSnapshot, cfg: PrioritizedReplayConfig) -> FloatArray:
        last = snapshot.column("last_episode")
        clock = float(snapshot.episode_clock) if snapshot.episode_clock else float(last.max(initial=0.0))
        return plr_distribution(snapshot.column("completions"), snapshot.column("score"), last, clock, cfg)
