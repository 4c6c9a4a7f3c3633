"""The learning-progress arithmetic and the score -> probability rule, against hand-computed values
(with score normalisation and the Gini coefficient, which every algorithm's statistics use)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from curriculum_redis.algorithms.learning_progress import (
    LearningProgressConfig,
    TaskState,
    apply_outcome,
    eviction_candidates,
    reweight,
    task_distribution,
)
from curriculum_redis.config import normalize_score
from curriculum_redis.errors import InvalidScoreError
from curriculum_redis.stats import gini

approx = pytest.approx


def _run(scores: list[float], cfg: LearningProgressConfig) -> TaskState:
    state = TaskState(label_hash=123, slot=4)
    for s in scores:
        state = apply_outcome(state, s, cfg)
    return state


def _dist(completions: list[float], lp: list[float], cfg: LearningProgressConfig, p_true: list[float] | None = None):
    c = np.asarray(completions, dtype=np.float64)
    p = np.zeros(len(lp)) if p_true is None else np.asarray(p_true, dtype=np.float64)
    return task_distribution(c, np.asarray(lp, dtype=np.float64), p, cfg)


# --------------------------------------------------------------------------- apply_outcome


def test_bidirectional_ema_after_three_scores_matches_hand_computation() -> None:
    # Defaults: a=0.1, k=0.2 (slow rate 0.02), tracker alpha 0.02, theta 0.5 (R = identity).
    # s=0.2: baseline B = min(0.2, 0.75) = 0.2; p = 0; p_fast = p_slow = 0; p_true = 0.2
    # s=0.6: p = 0.4/0.8 = 0.5; p_fast = 0.05; p_slow = 0.01; p_true = 0.24; lp = 0.04
    # s=1.0: p = 1; p_fast = 0.05 + 0.1*0.95 = 0.145; p_slow = 0.01 + 0.02*0.99 = 0.0298
    #        p_true = 0.24 + 0.1*0.76 = 0.316; lp = 0.145 - 0.0298 = 0.1152
    cfg = LearningProgressConfig()
    s1 = _run([0.2], cfg)
    assert (s1.baseline, s1.p_fast, s1.p_slow, s1.p_true, s1.lp) == approx((0.2, 0.0, 0.0, 0.2, 0.0))
    s2 = apply_outcome(s1, 0.6, cfg)
    assert (s2.p_fast, s2.p_slow, s2.p_true, s2.lp) == approx((0.05, 0.01, 0.24, 0.04))
    s3 = apply_outcome(s2, 1.0, cfg)
    assert s3.completions == 3
    assert s3.score_sum == approx(1.8)
    assert s3.last_score == 1.0
    assert s3.baseline == approx(0.2)  # fixed by the first score, never moved again
    assert s3.p_fast == approx(0.145)
    assert s3.p_slow == approx(0.0298)
    assert s3.p_true == approx(0.316)
    assert s3.lp == approx(0.1152)
    assert s3.label_hash == 123 and s3.slot == 4
    assert s3.consecutive_failures == 0


def test_tracker_emas_after_three_scores_match_hand_computation() -> None:
    # reward_ema: 0.2 -> 0.2 + 0.02*0.4 = 0.208 -> 0.208 + 0.02*0.792 = 0.22384
    # reward_sq_ema: 0.04 -> 0.04 + 0.02*0.32 = 0.0464 -> 0.0464 + 0.02*0.9536 = 0.065472
    # success_ema (threshold 0.5): 0 -> 0.02 -> 0.02 + 0.02*0.98 = 0.0396
    s = _run([0.2, 0.6, 1.0], LearningProgressConfig())
    assert s.reward_ema == approx(0.22384)
    assert s.reward_sq_ema == approx(0.065472)
    assert s.success_ema == approx(0.0396)


def test_variance_scorer_is_the_std_of_the_reward_emas() -> None:
    cfg = LearningProgressConfig(use_bidirectional=False)
    assert _run([0.2], cfg).lp == 0.0  # 0.04 - 0.2**2 = 0
    s = _run([0.2, 0.6, 1.0], cfg)
    assert s.lp == approx(math.sqrt(0.065472 - 0.22384**2))
    assert s.lp == approx(0.1239663, abs=1e-7)
    # The bidirectional EMAs are still kept up to date.
    assert s.p_fast == approx(0.145)


def test_variance_scorer_never_takes_sqrt_of_a_negative() -> None:
    cfg = LearningProgressConfig(use_bidirectional=False)
    s = _run([0.3] * 50, cfg)
    assert s.lp >= 0.0 and not math.isnan(s.lp)


def test_theta_below_half_reweights_progress() -> None:
    # theta = 0.2: R(p) = 0.8p / (p + 0.2(1 - 2p))
    # R(0.145) = 0.116 / 0.287 ; R(0.0298) = 0.02384 / 0.21788
    cfg = LearningProgressConfig(early_progress_amplification=0.2)
    s = _run([0.2, 0.6, 1.0], cfg)
    assert s.p_fast == approx(0.145) and s.p_slow == approx(0.0298)
    assert s.lp == approx(0.116 / 0.287 - 0.02384 / 0.21788)
    assert s.lp == approx(0.2947629, abs=1e-6)


def test_reweight_is_identity_at_half_and_fixes_the_ends() -> None:
    for p in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        assert reweight(p, 0.5) == approx(p)
    for theta in (0.1, 0.3, 0.9):
        assert reweight(0.0, theta) == 0.0
        assert reweight(1.0, theta) == approx(1.0)
    assert reweight(0.1, 0.1) == approx(0.1 * 0.9 / (0.1 + 0.1 * 0.8))  # 0.5


def test_first_score_above_cap_uses_baseline_075() -> None:
    s = _run([0.9], LearningProgressConfig())
    assert s.baseline == 0.75
    assert s.p_fast == approx(0.6) and s.p_slow == approx(0.6)  # (0.9 - 0.75) / 0.25
    assert s.p_true == approx(0.9)


def test_configured_random_baseline_replaces_the_first_score() -> None:
    cfg = LearningProgressConfig(random_baseline=0.25)
    s = _run([0.2], cfg)
    assert s.baseline == 0.25
    assert s.p_fast == 0.0  # max(0.2 - 0.25, 0) / 0.75
    s = apply_outcome(s, 1.0, cfg)
    assert s.p_fast == approx(0.1) and s.p_slow == approx(0.02)  # p = 1


def test_early_zero_scores_do_not_reinitialise_the_task() -> None:
    # Three zeros then a 1.0: the fourth outcome is an ordinary EMA step from p_fast = p_slow = 0.
    # (A 0.0 "uninitialised" sentinel would restart at p_fast = p_slow = 1, lp = 0, baseline 0.75.)
    cfg = LearningProgressConfig()
    s = _run([0.0, 0.0, 0.0], cfg)
    assert s.completions == 3 and s.baseline == 0.0 and s.p_fast == 0.0
    s = apply_outcome(s, 1.0, cfg)
    assert s.baseline == 0.0
    assert s.p_fast == approx(0.1)
    assert s.p_slow == approx(0.02)
    assert s.lp == approx(0.08)
    assert s.p_true == approx(0.1)
    assert s.reward_ema == approx(0.02)
    assert s.success_ema == approx(0.02)
    assert s.completions == 4


def test_constant_scores_give_zero_lp() -> None:
    cfg = LearningProgressConfig()
    assert _run([0.0] * 30, cfg).lp == 0.0
    assert _run([1.0] * 30, cfg).lp == 0.0
    assert _run([0.4] * 30, cfg).lp == 0.0


def test_rising_scores_give_positive_lp_and_falling_scores_too() -> None:
    cfg = LearningProgressConfig()
    rising = _run([i / 100 for i in range(100)], cfg)
    falling = _run([0.5] + [1 - i / 100 for i in range(100)], LearningProgressConfig(random_baseline=0.0))
    assert rising.lp > 0.1
    assert falling.lp > 0.1  # bidirectional: forgetting is progress too


def test_success_threshold_decides_success() -> None:
    cfg = LearningProgressConfig(success_threshold=0.8)
    assert _run([0.79], cfg).success_ema == 0.0
    assert _run([0.8], cfg).success_ema == 1.0


# --------------------------------------------------------------------------- normalize_score


@pytest.mark.parametrize(
    ("raw", "score_range", "expected"),
    [
        (0.0, (0.0, 1.0), 0.0),
        (0.25, (0.0, 1.0), 0.25),
        (1, (0.0, 1.0), 1.0),
        (0.0, (-1.0, 1.0), 0.5),
        (5.0, (0.0, 10.0), 0.5),
        (-3.0, (-10.0, 10.0), 0.35),
        (2.0, (0.0, 1.0), 1.0),  # clipped
        (-0.5, (0.0, 1.0), 0.0),  # clipped
        (1e300, (0.0, 1.0), 1.0),
        (np.float32(0.5), (0.0, 1.0), 0.5),
        (np.int64(3), (0.0, 4.0), 0.75),
    ],
)
def test_normalize_score_maps_range_and_clips(raw: Any, score_range: tuple[float, float], expected: float) -> None:
    value = normalize_score(raw, score_range)
    assert type(value) is float
    assert value == approx(expected)


@pytest.mark.parametrize(
    "raw", [float("nan"), float("inf"), -float("inf"), np.float64("nan"), "0.5", None, True, False, [0.5]]
)
def test_normalize_score_refuses_non_finite_and_non_numbers(raw: Any) -> None:
    with pytest.raises(InvalidScoreError):
        normalize_score(raw, (0.0, 1.0))


# --------------------------------------------------------------------------- task_distribution


def _assert_distribution(p: np.ndarray, n: int) -> None:
    assert p.shape == (n,)
    assert not np.isnan(p).any()
    assert (p >= 0).all()
    assert p.sum() == approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 10_000])
@pytest.mark.parametrize("temperature", [0.0, 0.5])
def test_distribution_sums_to_one_without_nan_for_any_pool_size(n: int, temperature: float) -> None:
    rng = np.random.default_rng(n)
    cfg = LearningProgressConfig(lp_score_temperature=temperature)
    completions = rng.integers(0, 30, n).astype(np.float64)
    lp = rng.random(n) * 0.3
    p = task_distribution(completions, lp, rng.random(n), cfg)
    _assert_distribution(p, n)


@pytest.mark.parametrize(
    ("completions", "lp"),
    [
        ([20] * 8, [0.3] * 8),  # all equal
        ([20] * 8, [0.0] * 8),  # all zero LP
        ([0] * 8, [0.0] * 8),  # all young
        ([0, 3, 9, 2], [0.5, 0.0, 0.9, 0.1]),  # all young, LP ignored
        ([10, 11, 50, 99], [0.0, 0.0, 0.0, 1e-300]),  # all eligible, tiny spread
        ([10], [0.0]),
        ([0], [0.0]),
    ],
)
def test_degenerate_pools_give_valid_distributions(completions: list[int], lp: list[float]) -> None:
    for cfg in (LearningProgressConfig(), LearningProgressConfig(lp_score_temperature=0.1)):
        p = _dist(completions, lp, cfg)
        _assert_distribution(p, len(lp))


def test_all_equal_or_all_young_pools_are_uniform() -> None:
    cfg = LearningProgressConfig()
    assert _dist([20] * 5, [0.2] * 5, cfg) == approx([0.2] * 5)
    assert _dist([0, 1, 2, 3], [0.9, 0.0, 0.1, 0.5], cfg) == approx([0.25] * 4)


def test_empty_pool_gives_empty_distribution() -> None:
    assert _dist([], [], LearningProgressConfig()).size == 0


def test_single_task_gets_everything() -> None:
    assert _dist([0], [0.0], LearningProgressConfig()) == approx([1.0])
    assert _dist([50], [0.3], LearningProgressConfig()) == approx([1.0])


def test_young_mass_follows_the_documented_rule() -> None:
    # Y = 2 young, E = 3 eligible, b = 0.1: M = 2.2 / 5.2; each young task gets M / 2.
    cfg = LearningProgressConfig(rand_task_rate=0.0, exploration_bonus=0.1)
    p = _dist([0, 9, 10, 20, 30], [0.0, 0.0, 0.1, 0.2, 0.3], cfg)
    young_mass = 2.2 / 5.2
    assert p[0] == approx(young_mass / 2)
    assert p[1] == approx(young_mass / 2)
    assert p[2:].sum() == approx(1 - young_mass)


def test_young_probability_does_not_depend_on_eligible_lp_values() -> None:
    # Reference bug 4.2: normalising over all tasks let eligible LP values dilute young tasks.
    cfg = LearningProgressConfig(rand_task_rate=0.0, exploration_bonus=0.5)
    completions = [0, 0, 0, 12, 15, 40]
    young = []
    for eligible_lp in ([0.0, 0.0, 0.0], [0.01, 0.5, 0.9], [5.0, 5.0, 0.0], [1e-9, 2e-9, 3e-9]):
        p = _dist(completions, [0.7, 0.0, 0.3, *eligible_lp], cfg)
        young.append(p[:3])
    expected = 4.5 / (4.5 + 3) / 3  # M = Y(1+b) / (Y(1+b) + E) shared by Y = 3
    for probs in young:
        assert probs == approx([expected] * 3)


def test_rand_task_rate_mixes_in_the_uniform_distribution() -> None:
    # One young, one eligible: M = 1.1 / 2.1; with r = 0.2, young = 0.8 M + 0.2 / 2.
    cfg = LearningProgressConfig(rand_task_rate=0.2)
    p = _dist([0, 20], [0.0, 0.5], cfg)
    m = 1.1 / 2.1
    assert p == approx([0.8 * m + 0.1, 0.8 * (1 - m) + 0.1])


def test_rand_task_rate_one_is_uniform() -> None:
    p = _dist([0, 20, 30], [0.0, 0.5, 0.0], LearningProgressConfig(rand_task_rate=1.0))
    assert p == approx([1 / 3] * 3)


def test_eligible_tasks_share_by_sigmoid_of_amplified_z_score() -> None:
    # LP [0, 0, 1]: mean 1/3, std sqrt(2)/3; z * 10 = [-5 sqrt2, -5 sqrt2, 10 sqrt2].
    cfg = LearningProgressConfig(rand_task_rate=0.0)
    p = _dist([10, 10, 10], [0.0, 0.0, 1.0], cfg)
    low, high = 1 / (1 + math.exp(5 * math.sqrt(2))), 1 / (1 + math.exp(-10 * math.sqrt(2)))
    total = 2 * low + high
    assert p == approx([low / total, low / total, high / total])
    assert p[2] > 0.99


def test_temperature_replaces_the_z_score() -> None:
    # T = 1: w = sigmoid(lp): sigmoid(0) = 0.5, sigmoid(1) = 0.7310586.
    cfg = LearningProgressConfig(rand_task_rate=0.0, lp_score_temperature=1.0)
    p = _dist([10, 10], [0.0, 1.0], cfg)
    s1 = 1 / (1 + math.exp(-1))
    assert p == approx([0.5 / (0.5 + s1), s1 / (0.5 + s1)])
    # T = 0.5 doubles x: sigmoid(2).
    p = _dist([10, 10], [0.0, 1.0], LearningProgressConfig(rand_task_rate=0.0, lp_score_temperature=0.5))
    s2 = 1 / (1 + math.exp(-2))
    assert p == approx([0.5 / (0.5 + s2), s2 / (0.5 + s2)])


def test_performance_bonus_adds_weighted_p_true() -> None:
    # T = 1, lp 0 for both, bonus 2 * p_true = [0, 1]: same as LP [0, 1].
    cfg = LearningProgressConfig(rand_task_rate=0.0, lp_score_temperature=1.0, performance_bonus_weight=2.0)
    p = _dist([10, 10], [0.0, 0.0], cfg, p_true=[0.0, 0.5])
    s1 = 1 / (1 + math.exp(-1))
    assert p == approx([0.5 / (0.5 + s1), s1 / (0.5 + s1)])


def test_higher_lp_never_gets_less_probability() -> None:
    rng = np.random.default_rng(3)
    lp = rng.random(50)
    p = _dist([20] * 50, list(lp), LearningProgressConfig())
    order = np.argsort(lp)
    assert (np.diff(p[order]) >= -1e-15).all()


def test_huge_z_scores_do_not_overflow() -> None:
    cfg = LearningProgressConfig(z_score_amplification=1e6, rand_task_rate=0.0)
    p = _dist([20] * 4, [0.0, 0.0, 0.0, 1.0], cfg)
    _assert_distribution(p, 4)
    assert p[3] == approx(1.0)


# --------------------------------------------------------------------------- eviction_candidates


def test_eviction_candidates_need_presentations_and_take_the_lowest_lp_first() -> None:
    # Sorted LP: [0, 0, .02, .05, .3, .5, .6, .7, .8, .9]; 40% quantile at position 3.6:
    # 0.05 + 0.6 * (0.3 - 0.05) = 0.2. Qualifying: LP <= 0.2 and >= 5 completions.
    completions = np.array([10, 10, 10, 10, 4, 10, 10, 10, 10, 10], dtype=np.float64)
    lp = np.array([0.3, 0.05, 0.0, 0.9, 0.0, 0.02, 0.8, 0.7, 0.6, 0.5])
    cfg = LearningProgressConfig()
    idx, threshold = eviction_candidates(completions, lp, cfg, limit=10)
    assert threshold == approx(0.2)
    assert idx.tolist() == [2, 5, 1]  # index 4 (LP 0) has only 4 presentations
    idx, _ = eviction_candidates(completions, lp, cfg, limit=2)
    assert idx.tolist() == [2, 5]


def test_eviction_candidates_include_tasks_at_exactly_the_threshold() -> None:
    lp = np.array([0.1, 0.1, 0.1, 0.1])
    idx, threshold = eviction_candidates(np.full(4, 5.0), lp, LearningProgressConfig(), limit=10)
    assert threshold == approx(0.1)
    assert idx.tolist() == [0, 1, 2, 3]


def test_eviction_respects_min_presentations_setting() -> None:
    cfg = LearningProgressConfig(min_presentations_for_eviction=20)
    idx, _ = eviction_candidates(np.array([19.0, 20.0, 25.0]), np.array([0.0, 0.0, 0.9]), cfg, limit=5)
    assert idx.tolist() == [1]


@pytest.mark.parametrize("limit", [0, -3])
def test_no_eviction_candidates_without_budget(limit: int) -> None:
    idx, _ = eviction_candidates(np.full(3, 50.0), np.zeros(3), LearningProgressConfig(), limit=limit)
    assert idx.size == 0


def test_no_eviction_candidates_in_empty_pool() -> None:
    idx, _ = eviction_candidates(np.zeros(0), np.zeros(0), LearningProgressConfig(), limit=3)
    assert idx.size == 0


def test_percentile_zero_evicts_only_the_minimum() -> None:
    cfg = LearningProgressConfig(eviction_threshold_percentile=0.0)
    idx, threshold = eviction_candidates(np.full(4, 9.0), np.array([0.4, 0.1, 0.3, 0.2]), cfg, limit=4)
    assert threshold == approx(0.1)
    assert idx.tolist() == [1]


# --------------------------------------------------------------------------- gini


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 1, 1, 1], 0.0),
        ([0, 0, 0, 1], 0.75),
        ([1, 2, 3, 4], 0.25),
        ([4, 3, 2, 1], 0.25),  # order does not matter
        ([5], 0.0),
        ([0, 0, 0, 0], 0.0),
        ([], 0.0),
        ([0, 1], 0.5),
    ],
)
def test_gini_of_hand_computed_examples(values: list[float], expected: float) -> None:
    assert gini(np.asarray(values, dtype=np.float64)) == approx(expected, abs=1e-12)
