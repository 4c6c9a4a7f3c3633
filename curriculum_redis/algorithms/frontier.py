"""Frontier learning progress (see README, "The algorithm"): a curriculum for finite task spaces.

Per task, per outcome (Lua and Python, bit for bit): a fast and a slow EMA of success, the slow EMA of
its square, and the count of wins. The headline score is the noise-corrected gap of the two EMAs plus a
low-success term. Over a snapshot (numpy only) the score part ranks tasks (rank weights are robust to the
score's scale), and a retry part draws never-solved tasks again in proportion to how stale they are and to
how hot their label is: a start cell next to solved ones (same label) is the frontier of a reverse
curriculum, while a label never solved anywhere (an impossible family) gets almost nothing. Settled tasks
(mastered, or hopeless, over long evidence) give their rank weight to the tasks being learnt. Designed and
measured in the quality suite (README, "Curriculum quality").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from curriculum_redis.algorithms.base import FloatArray, IndexArray, PoolAlgorithm, low_score_candidates
from curriculum_redis.config import PoolConfig
from curriculum_redis.errors import ConfigError

if TYPE_CHECKING:
    from curriculum_redis.store.base import ScoreSnapshot

RECOMMENDED_REFRESH_EVERY_DRAWS = 10
"""The design steers every few episodes: a refresh every 10 draws is what was measured (256-task pools)."""
DISCOVERY_FAILURES = 2
"""A discovery is a task solved after at least this many failures."""
MASTERED_ADMISSION = 0.1
"""Odds of admitting a task of a label mastered in the pool, against 1 for one being learnt."""
MASTERED_SUCCESS = 0.9
"""A label is mastered in the pool when its tasks there won at least this share of their outcomes ..."""
MASTERED_EVIDENCE = 10
"""... and of at least this many outcomes."""
SETTLED_EVIDENCE = 100
"""A task is settled once it won at least ``MASTERED_SUCCESS`` of this many outcomes or more (mastered) ..."""
HOPELESS_EVIDENCE = 200
"""... or none of this many or more, in a label never solved in the pool (hopeless): see ``settled_rank_weight``.
Both are long: FrozenLake start cells solved after a few failures, or not reached yet, stay unsettled."""
NEIGHBOUR_POOL_LIMIT = 8192
"""Nearness is computed exactly, O(never solved x solved) per refresh: pools up to this size."""
RECORDS_READ_PER_DRAW = 25
"""Larger pools refresh less often, so that refreshing reads at most about this many task records a draw."""


class FrontierConfig(PoolConfig):
    """Frontier learning progress: rank-weighted noise-corrected LP plus retries of unsolved tasks pooled
    over their label (see README, "The algorithm")."""

    # Sampling-only fields; gap_z and low_success_weight shape the stored score (the Lua update reads them).
    SAFE: ClassVar[frozenset[str]] = PoolConfig.SAFE | {
        "min_samples", "rank_beta", "retry_mass", "retry_floor", "heat_scale", "zero_slow", "rand_task_rate",
        "discovery_wins", "give_up_after", "retry_cap", "settled_rank_weight", "neighbour_distance",
        "neighbour_decay",
    }  # fmt: skip

    algorithm: Literal["frontier"] = "frontier"
    fast_alpha: float = Field(0.2, gt=0.0, le=1.0)
    slow_alpha: float = Field(0.05, gt=0.0, le=1.0)
    gap_z: float = Field(2.0, ge=0.0)
    """Standard deviations of the EMA gap that a task of constant success would show anyway."""
    low_success_weight: float = Field(0.5, ge=0.0)
    """Weight of ``fast (1 - fast)^2``, peaking at 1/3: slow learning that the EMA gap cannot see."""
    min_samples: int = Field(2, ge=1)
    """Below this many outcomes a task is young: ranked first."""
    rank_beta: float = Field(0.5, gt=0.0)
    """Rank weights ``(1/rank)^(1/beta)``; smaller focuses harder."""
    retry_mass: float = Field(0.6, ge=0.0, le=1.0)
    """rho: the most mass the retry of never-solved tasks takes (when their label is hot)."""
    retry_floor: float = Field(0.01, ge=0.0)
    """h: the retry weight of a task whose label has never been solved, relative to a hot one's 1."""
    heat_scale: float = Field(0.2, gt=0.0)
    """tau: a label is fully hot when one of its tasks has a fast success EMA of at least this."""
    zero_slow: float = Field(0.05, ge=0.0, le=1.0)
    """A task whose slow success EMA is below this counts as (hardly) never solved."""
    discovery_wins: int = Field(6, ge=0)
    """A task with 1..discovery_wins wins and a fast EMA of at least heat_scale is a fresh discovery: while
    one exists the frontier is moving, and the retry part takes all of retry_mass (0 turns this off)."""
    rand_task_rate: float = Field(0.25, ge=0.0, le=1.0)
    retry_cap: float = Field(4.0, ge=0.0)
    """The retry part gives a task of a cold label at most this many uniform shares (``retry_cap / pool
    size``): when a discovery opens the retry part, a lone never-solved task of a label never solved
    (likely impossible) never takes all of ``retry_mass``. Hot labels are not capped: the last unsolved
    cells of a block being solved are the frontier."""
    settled_rank_weight: float = Field(0.0, ge=0.0, le=1.0)
    """Rank weights of settled tasks (``SETTLED_EVIDENCE``, ``HOPELESS_EVIDENCE``: mastered or hopeless) are
    multiplied by this, and the rank mass freed goes to the tasks being learnt (solved sometimes, not settled).
    Ranks are scale-free: in a small pool a mastered task's noise outranks every never-won task, and the
    bottom ranks, where never-won tasks tie, still hold a few per cent. Settled tasks keep the uniform part
    (1 turns this off)."""
    give_up_after: int = Field(20, ge=1)
    """A task never solved in this many outcomes, of a label never solved in the pool, is given up on: it may
    be evicted (and re-admitted later, in a finite space). Else the pool of a generator that keeps
    sending new tasks fills with impossible ones (mastered tasks leave, they stay), drawn by the uniform
    part."""

    neighbour_distance: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    """When the generator gives tasks ``coordinates``: the distance at which two tasks are neighbours (1 for
    grid cells). A never-solved task's retry and uniform weights are scaled by its nearness to the closest
    solved task, ``exp(-neighbour_decay * max(0, d / neighbour_distance - 1))`` (``d`` Euclidean), and the
    retry part's mass by the nearest one's: the tasks next to what is solved are the frontier (a reverse
    curriculum's next start cells, a slightly harder parameter), the far ones wait."""
    neighbour_decay: float = Field(3.0, gt=0.0, allow_inf_nan=False)
    """How fast nearness falls beyond ``neighbour_distance``: by ``e^-3``, 0.05, one more distance out."""

    def refresh_every_draws(self) -> int:
        return max(RECOMMENDED_REFRESH_EVERY_DRAWS, self.num_active_tasks // RECORDS_READ_PER_DRAW)

    def model_post_init(self, __context: object) -> None:
        if self.retry_mass + self.rand_task_rate > 1.0:
            raise ConfigError(
                f"retry_mass ({self.retry_mass}) + rand_task_rate ({self.rand_task_rate}) exceeds 1; lower one"
            )


def gap_noise_factor(fast_alpha: float, slow_alpha: float) -> float:
    """Var(fast - slow) / Var(outcome) for i.i.d. outcomes: the gap a task shows with no learning at all."""
    a, b = fast_alpha, slow_alpha
    return a / (2.0 - a) + b / (2.0 - b) - 2.0 * a * b / (a + b - a * b)


def frontier_score(fast: float, slow: float, sq: float, noise: float, z: float, w_low: float) -> float:
    """The headline score: ``max(0, |fast - slow| - z sd) + w_low fast (1 - fast)^2`` (Lua does the same)."""
    sd = math.sqrt(noise * max(0.0, sq - slow * slow))
    return max(0.0, abs(fast - slow) - z * sd) + w_low * fast * (1.0 - fast) * (1.0 - fast)


def rank_probabilities(young: np.ndarray, score: FloatArray, beta: float) -> FloatArray:
    """``(1/rank)^(1/beta)`` normalised; young tasks rank first, then by score descending. Tied tasks share
    the mean weight of the ranks they span, so the pool's order (which follows the generator's, and may
    encode difficulty) never decides who is drawn."""
    n = score.size
    key = np.where(young, np.inf, score)
    order = np.argsort(-key, kind="stable")
    weight = (1.0 / np.arange(1, n + 1)) ** (1.0 / beta)
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, n])
    shared = np.repeat(np.add.reduceat(weight, starts) / sizes, sizes)
    w = np.empty(n)
    w[order] = shared
    return np.asarray(w / w.sum(), dtype=np.float64)


def label_heat(labels: np.ndarray, fast: FloatArray, tau: float) -> FloatArray:
    """Per task: ``min(1, max of fast over its label / tau)``."""
    uniq, inverse = np.unique(labels, return_inverse=True)
    best = np.zeros(uniq.size)
    np.maximum.at(best, inverse, fast)
    return np.asarray(np.minimum(1.0, best / tau)[inverse], dtype=np.float64)


def settle(
    p_score: FloatArray,
    completions: FloatArray,
    heat: FloatArray,
    wins: FloatArray,
    zero: np.ndarray,
    cfg: FrontierConfig,
) -> FloatArray:
    """Scale the rank weights of settled tasks by ``settled_rank_weight``, giving the mass freed to tasks being
    learnt (neither settled nor never solved) in proportion to their rank weights; unchanged without either.
    ``heat``: each task's label heat (:func:`label_heat`)."""
    completions, wins = np.asarray(completions), np.asarray(wins)
    mastered = (completions >= SETTLED_EVIDENCE) & (wins >= MASTERED_SUCCESS * completions)
    cold = np.asarray(heat) < 1.0
    settled = mastered | ((completions >= HOPELESS_EVIDENCE) & cold & (wins == 0.0))
    learning = ~settled & ~zero
    if not (settled.any() and learning.any()):
        return p_score
    freed = (1.0 - cfg.settled_rank_weight) * float(p_score[settled].sum())
    scaled = np.where(settled, cfg.settled_rank_weight * p_score, p_score)
    return np.asarray(np.where(learning, scaled * (1.0 + freed / float(scaled[learning].sum())), scaled))


def discovering(completions: FloatArray, wins: FloatArray, fast: FloatArray, cfg: FrontierConfig) -> float:
    """1 while some task that failed before was solved lately (few wins, winning now), else 0: the learner
    has just reached new ground, so tasks never solved may be next (a reverse curriculum's frontier moves
    with it), whatever their labels say. Without it, one label per task leaves the retry part cold. A new
    task solved from its first tries is no discovery: an endless generator sends those all the time."""
    failed = np.asarray(completions) - wins >= DISCOVERY_FAILURES
    fresh = failed & (wins >= 1.0) & (wins <= cfg.discovery_wins) & (np.asarray(fast) >= cfg.heat_scale)
    return 1.0 if bool(fresh.any()) else 0.0


def nearness(positions: FloatArray, solved: np.ndarray, zero: np.ndarray, cfg: FrontierConfig) -> FloatArray:
    """Per task: 1, or for a never-solved task ``exp(-decay * max(0, d / distance - 1))`` with ``d`` its
    Euclidean distance to the closest solved task (all 1 while nothing is solved: nothing is near yet)."""
    near = np.ones(positions.shape[0])
    if not (solved.any() and zero.any()):
        return near
    points, targets = positions[zero], positions[solved]
    squared = np.einsum("ij,ij->i", targets, targets)
    closest = np.empty(points.shape[0])
    step = max(1, 2**22 // targets.shape[0])  # bounded memory: about 32 MiB of distances a chunk
    for lo in range(0, points.shape[0], step):
        # min over t of |p - t|^2 = |p|^2 + min(|t|^2 - 2 p.t): one matrix product, changed in place (a
        # fresh array per step costs more in page faults than the arithmetic)
        chunk = points[lo : lo + step]
        d2 = chunk @ targets.T
        d2 *= -2.0
        d2 += squared
        nearest = d2.min(axis=1) + np.einsum("ij,ij->i", chunk, chunk)
        closest[lo : lo + step] = np.sqrt(np.maximum(nearest, 0.0))
    excess = np.maximum(0.0, closest / cfg.neighbour_distance - 1.0)
    near[zero] = np.exp(-cfg.neighbour_decay * excess)
    return near


@dataclass(frozen=True)
class FrontierParts:
    """The three parts of the distribution, each already weighted (they sum to 1 up to rounding), kept apart
    so that diagnostics can tell where the budget goes (``benchmarks/budget.py``)."""

    rank: FloatArray
    retry: FloatArray
    uniform: FloatArray
    young: np.ndarray
    """Tasks with fewer than ``min_samples`` outcomes (ranked first)."""

    def probabilities(self) -> FloatArray:
        """Sampling probability of each task; sums to 1, never NaN (see README, "The algorithm")."""
        probs = self.rank + self.retry + self.uniform
        return np.asarray(probs / probs.sum(), dtype=np.float64) if probs.size else np.zeros(0)


def frontier_parts(
    completions: FloatArray,
    last_episode: FloatArray,
    labels: np.ndarray,
    fast: FloatArray,
    slow: FloatArray,
    score: FloatArray,
    wins: FloatArray,
    clock: int,
    cfg: FrontierConfig,
    positions: FloatArray | None = None,
) -> FrontierParts:
    """The rank, retry and uniform parts of the sampling distribution (see README, "The algorithm").
    ``positions``: one row of coordinates per task (``TaskGenerator.coordinates``), or ``None``."""
    n = score.size
    if n == 0:
        return FrontierParts(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
    young = np.asarray(completions) < cfg.min_samples
    p_score = rank_probabilities(young, np.asarray(score, dtype=np.float64), cfg.rank_beta)
    zero = ~young & ((wins == 0.0) | (slow < cfg.zero_slow))
    heat = label_heat(labels, np.asarray(fast, dtype=np.float64), cfg.heat_scale)
    if cfg.settled_rank_weight != 1.0:
        p_score = settle(p_score, completions, heat, wins, zero, cfg)
    near = np.ones(n)
    located = positions is not None
    if located:
        solved = (np.asarray(wins) > 0.0) & (np.asarray(slow) >= cfg.zero_slow)
        near = nearness(np.asarray(positions, dtype=np.float64).reshape(n, -1), solved, zero, cfg)
    mass = 0.0
    p_retry = np.zeros(n)
    if zero.any():
        h = cfg.retry_floor
        stale = np.maximum(0.0, clock - np.asarray(last_episode)) + 1.0
        w = np.where(zero, stale * (h + heat) * near, 0.0)
        opened = discovering(completions, wins, fast, cfg)
        mass = cfg.retry_mass * max((h + float(heat[zero].max())) / (h + 1.0), opened) * float(near[zero].max())
        total = float(w.sum())
        if total > 0.0:
            # Near tasks are the frontier whatever their label: only far ones of cold labels are capped.
            capped = (heat < 1.0) & (near < 1.0) if located else heat < 1.0
            p_retry = np.minimum(mass * w / total, np.where(capped, cfg.retry_cap / n, np.inf))
            mass = float(p_retry.sum())
        else:
            mass = 0.0
    eps = cfg.rand_task_rate
    parts = FrontierParts((1.0 - eps - mass) * p_score, p_retry, np.full(n, eps / n), young)
    if not located:
        return parts
    # Far never-solved tasks keep a share of their uniform weight; what they free goes to every part alike.
    uniform = parts.uniform * near
    total = float(parts.rank.sum() + p_retry.sum() + uniform.sum())
    return FrontierParts(parts.rank / total, p_retry / total, uniform / total, young)


class Frontier(PoolAlgorithm):
    name = "frontier"
    config_class = FrontierConfig
    score_field = "frontier"
    state_fields = ("fast", "slow", "sq", "wins")
    admits_by_label = True

    def meta_fields(self, cfg: FrontierConfig) -> dict[str, str]:
        return {
            "fast_alpha": repr(float(cfg.fast_alpha)),
            "slow_alpha": repr(float(cfg.slow_alpha)),
            "gap_noise": repr(gap_noise_factor(cfg.fast_alpha, cfg.slow_alpha)),
            "gap_z": repr(float(cfg.gap_z)),
            "low_success_weight": repr(float(cfg.low_success_weight)),
        }

    def update(self, state: dict[str, float], x: float, success: float, cfg: FrontierConfig, clock: int) -> float:
        s = success
        if state["completions"] == 0:
            fast, slow, sq, wins = s, s, s * s, s
        else:
            fast = state["fast"] + cfg.fast_alpha * (s - state["fast"])
            slow = state["slow"] + cfg.slow_alpha * (s - state["slow"])
            sq = state["sq"] + cfg.slow_alpha * (s * s - state["sq"])
            wins = state["wins"] + s
        state.update(fast=fast, slow=slow, sq=sq, wins=wins)
        noise = gap_noise_factor(cfg.fast_alpha, cfg.slow_alpha)
        state["frontier"] = frontier_score(fast, slow, sq, noise, cfg.gap_z, cfg.low_success_weight)
        return state["frontier"]

    def distribution(self, snapshot: ScoreSnapshot, cfg: FrontierConfig) -> FloatArray:
        return self.parts(snapshot, cfg).probabilities()

    def parts(self, snapshot: ScoreSnapshot, cfg: FrontierConfig) -> FrontierParts:
        return frontier_parts(
            snapshot.column("completions"), snapshot.column("last_episode"), snapshot.label_hashes,
            snapshot.column("fast"), snapshot.column("slow"), snapshot.column("frontier"),
            snapshot.column("wins"), snapshot.episode_clock, cfg, snapshot.positions,
        )  # fmt: skip

    def eviction_candidates(
        self, snapshot: ScoreSnapshot, cfg: FrontierConfig, limit: int
    ) -> tuple[IndexArray, FloatArray]:
        """Solved tasks with a low score (mastered ones) leave the pool, and so do tasks given up on: never
        solved in ``give_up_after`` outcomes, in a label never solved in the pool either. Other never-solved
        tasks score 0 too, but they are the retry part's to draw, and may be the frontier."""
        score = snapshot.column("frontier")
        wins, slow = snapshot.column("wins"), snapshot.column("slow")
        completions = snapshot.column("completions")
        solved = (wins > 0.0) & (slow >= cfg.zero_slow)
        cold = label_heat(snapshot.label_hashes, snapshot.column("fast"), cfg.heat_scale) < 1.0
        hopeless = ~solved & cold & (completions >= cfg.give_up_after)
        idx, threshold = low_score_candidates(
            np.where(solved | hopeless, completions, 0.0), score, cfg.eviction_threshold_percentile,
            cfg.min_presentations_for_eviction, limit,
        )  # fmt: skip
        return idx, np.full(idx.size, threshold)

    def admission_weights(
        self, snapshot: ScoreSnapshot, cfg: FrontierConfig, label_hashes: IndexArray
    ) -> FloatArray | None:
        """Odds of admitting a candidate by its label's standing in the pool: 1 for a label being learnt
        or not in the pool, ``retry_floor`` for one never solved there (else each task given up on would be
        replaced by its like, and an endless generator's pool would hold as many impossible tasks as uniform
        sampling does), ``MASTERED_ADMISSION`` for one mastered there (its tasks won 90% of at least 10
        outcomes)."""
        held = snapshot.label_hashes
        if held.size == 0:
            return None
        uniq, inverse = np.unique(held, return_inverse=True)
        best = np.zeros(uniq.size)
        np.maximum.at(best, inverse, snapshot.column("fast"))
        completions = snapshot.column("completions")
        tried = np.bincount(inverse, completions, uniq.size)
        won = np.bincount(inverse, snapshot.column("wins"), uniq.size)
        mastered = won >= MASTERED_SUCCESS * np.maximum(tried, MASTERED_EVIDENCE)
        odds = np.where(best < cfg.heat_scale, cfg.retry_floor, np.where(mastered, MASTERED_ADMISSION, 1.0))
        where = np.searchsorted(uniq, label_hashes).clip(0, uniq.size - 1)
        return np.asarray(np.where(uniq[where] == label_hashes, odds[where], 1.0), dtype=np.float64)
