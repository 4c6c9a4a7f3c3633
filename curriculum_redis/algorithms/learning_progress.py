"""Learning progress (see README, "The algorithm"): the formulas live in :mod:`curriculum_redis.scoring`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from curriculum_redis.algorithms.base import Algorithm, FloatArray, IndexArray
from curriculum_redis.config import AnyAlgorithmConfig, LearningProgressConfig
from curriculum_redis.scoring import TaskState, apply_outcome, effective_lp, eviction_candidates, task_distribution

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot

SCRIPTED_HYPERS = (
    "ema_timescale",
    "slow_timescale_factor",
    "tracker_ema_alpha",
    "early_progress_amplification",
)


def _lp(cfg: AnyAlgorithmConfig) -> LearningProgressConfig:
    assert isinstance(cfg, LearningProgressConfig), type(cfg).__name__
    return cfg


class LearningProgress(Algorithm):
    name = "learning_progress"
    score_field = "lp"
    state_fields = ("reward_ema", "reward_sq_ema", "success_ema", "p_fast", "p_slow", "p_true", "baseline")

    def meta_fields(self, cfg: AnyAlgorithmConfig) -> dict[str, str]:
        lp = _lp(cfg)
        fields = {name: repr(float(getattr(lp, name))) for name in SCRIPTED_HYPERS}
        fields["scorer"] = "bidirectional" if lp.use_bidirectional else "variance"
        fields["random_baseline"] = "" if lp.random_baseline is None else repr(float(lp.random_baseline))
        return fields

    def update(self, state: dict[str, float], x: float, success: float, cfg: AnyAlgorithmConfig, clock: int) -> float:
        before = TaskState(
            label_hash=0, completions=int(state["completions"]), reward_ema=state["reward_ema"],
            reward_sq_ema=state["reward_sq_ema"], success_ema=state["success_ema"], p_fast=state["p_fast"],
            p_slow=state["p_slow"], p_true=state["p_true"], baseline=state["baseline"],
        )  # fmt: skip
        after = apply_outcome(before, x, _lp(cfg))
        for name in self.state_fields:
            state[name] = getattr(after, name)
        state["lp"] = after.lp
        return after.lp

    def effective(self, snapshot: ScoreSnapshot, cfg: AnyAlgorithmConfig) -> FloatArray:
        return effective_lp(
            snapshot.column("lp"), snapshot.column("reward_ema"), snapshot.column("reward_sq_ema"),
            snapshot.column("baseline"), _lp(cfg),
        )  # fmt: skip

    def distribution(self, snapshot: ScoreSnapshot, cfg: AnyAlgorithmConfig) -> FloatArray:
        return task_distribution(snapshot.column("completions"), self.effective(snapshot, cfg),
                                 snapshot.column("p_true"), _lp(cfg))  # fmt: skip

    def eviction_candidates(
        self, snapshot: ScoreSnapshot, cfg: AnyAlgorithmConfig, limit: int
    ) -> tuple[IndexArray, FloatArray]:
        hypers = _lp(cfg)
        effective = self.effective(snapshot, cfg)
        idx, threshold = eviction_candidates(snapshot.column("completions"), effective, hypers, limit)
        if hypers.lp_noise_correction == 0.0:
            # The server re-checks the raw LP against the percentile.
            return idx, np.full(idx.size, threshold)
        # Sampling uses the corrected LP: the victim's raw LP must not have risen since this snapshot.
        return idx, snapshot.column("lp")[idx]
