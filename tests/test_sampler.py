"""The local sampler (draws from a probability snapshot) and the refresh policy."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from curriculum_redis.errors import CurriculumError
from curriculum_redis.sampler import EmptyPoolError, LocalSampler, RefreshPolicy


def _sampler(ids: list[int], probs: list[float], seed: int = 0, block_size: int = 64) -> LocalSampler:
    sampler = LocalSampler(np.random.default_rng(seed), block_size=block_size)
    sampler.load(np.asarray(ids, dtype=np.int64), np.asarray(probs, dtype=np.float64))
    return sampler


def test_empirical_frequencies_match_probabilities() -> None:
    ids = [11, 22, 33, 44, 55]
    probs = np.array([0.05, 0.1, 0.15, 0.3, 0.4])
    sampler = _sampler(ids, list(probs), seed=1234)
    n = 50_000
    counts = Counter(sampler.draw() for _ in range(n))
    observed = np.array([counts[i] for i in ids], dtype=np.float64)
    expected = probs * n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 20.5  # chi-square, 4 degrees of freedom: p ~ 0.0004
    assert sum(counts.values()) == n


def test_draw_batch_frequencies_match_probabilities() -> None:
    probs = np.array([0.5, 0.25, 0.125, 0.125])
    sampler = _sampler([1, 2, 3, 4], list(probs), seed=99)
    draws = sampler.draw_batch(50_000)
    assert draws.dtype == np.int64
    observed = np.array([(draws == i).sum() for i in (1, 2, 3, 4)], dtype=np.float64)
    expected = probs * 50_000
    assert float(((observed - expected) ** 2 / expected).sum()) < 16.3  # 3 dof, p ~ 0.001


def test_unnormalised_probabilities_are_normalised() -> None:
    sampler = _sampler([1, 2], [3.0, 1.0], seed=5)
    draws = sampler.draw_batch(40_000)
    share = float((draws == 1).mean())
    assert abs(share - 0.75) < 5 * (0.75 * 0.25 / 40_000) ** 0.5


@pytest.mark.parametrize(
    "probs",
    [[0.0, 0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]],
)
def test_zero_probability_tasks_are_never_drawn(probs: list[float]) -> None:
    ids = [10, 20, 30, 40, 50]
    sampler = _sampler(ids, probs, seed=7)
    allowed = {i for i, p in zip(ids, probs, strict=True) if p > 0}
    drawn = set(sampler.draw_batch(20_000).tolist()) | {sampler.draw() for _ in range(2000)}
    assert drawn == allowed


def test_tiny_zero_probability_after_many_small_ones_is_never_drawn() -> None:
    # Many 0.1 steps do not add up to exactly 1.0: the trailing zero-probability task must still lose.
    probs = [0.1] * 10 + [0.0]
    sampler = _sampler(list(range(1, 12)), probs, seed=3)
    assert 11 not in set(sampler.draw_batch(200_000).tolist())


def test_single_task_is_always_drawn() -> None:
    sampler = _sampler([77], [1.0])
    assert {sampler.draw() for _ in range(200)} == {77}


def test_empty_pool_raises_empty_pool_error() -> None:
    sampler = LocalSampler(np.random.default_rng(0))
    with pytest.raises(EmptyPoolError):
        sampler.draw()
    sampler.load(np.zeros(0, dtype=np.int64), np.zeros(0))
    with pytest.raises(EmptyPoolError, match="empty"):
        sampler.draw_batch(3)
    assert issubclass(EmptyPoolError, CurriculumError)
    assert sampler.size == 0


def test_load_replaces_the_prefetched_block() -> None:
    sampler = _sampler([1], [1.0], block_size=64)
    assert sampler.draw() == 1  # 63 more draws of task 1 are now prefetched
    sampler.load(np.array([2], dtype=np.int64), np.array([1.0]))
    assert [sampler.draw() for _ in range(100)] == [2] * 100


def test_load_with_mismatched_shapes_is_refused() -> None:
    sampler = LocalSampler(np.random.default_rng(0))
    with pytest.raises(ValueError):
        sampler.load(np.array([1, 2], dtype=np.int64), np.array([1.0]))


def test_size_is_the_number_of_loaded_tasks() -> None:
    assert _sampler([5, 6, 7], [0.2, 0.3, 0.5]).size == 3


def test_same_seed_gives_the_same_draws() -> None:
    a = _sampler([1, 2, 3], [0.2, 0.3, 0.5], seed=42)
    b = _sampler([1, 2, 3], [0.2, 0.3, 0.5], seed=42)
    assert [a.draw() for _ in range(300)] == [b.draw() for _ in range(300)]


# --------------------------------------------------------------------------- RefreshPolicy


def test_refresh_is_due_at_the_first_draw() -> None:
    policy = RefreshPolicy(every_draws=1000, every_s=3600.0)
    assert policy.tick()


def test_refresh_is_due_after_n_draws() -> None:
    policy = RefreshPolicy(every_draws=3, every_s=3600.0)
    policy.refreshed()
    assert policy.tick() is False
    assert policy.tick() is False
    assert policy.tick() is True
    policy.refreshed()
    assert policy.tick() is False


def test_refresh_is_due_after_t_seconds() -> None:
    policy = RefreshPolicy(every_draws=10**9, every_s=0.01)
    policy.refreshed()
    time.sleep(0.05)
    assert policy.tick()


def test_first_refreshes_come_early_then_double_up_to_the_cadence() -> None:
    policy = RefreshPolicy(every_draws=100, every_s=None, first_draws=8)
    gaps = []
    for _ in range(7):
        policy.refreshed()
        draws = 1
        while not policy.tick():
            draws += 1
        gaps.append(draws)
    assert gaps == [8, 16, 32, 64, 100, 100, 100]


def test_without_a_time_limit_only_draws_count() -> None:
    policy = RefreshPolicy(every_draws=3, every_s=None)
    policy.refreshed()
    time.sleep(0.02)
    assert [policy.tick() for _ in range(3)] == [False, False, True]


def test_refresh_policy_from_sampler_config() -> None:
    from curriculum_redis.config import SamplerConfig

    policy = RefreshPolicy.from_config(SamplerConfig(refresh_every_draws=50, refresh_every_s=None))
    assert (policy.every_draws, policy.every_s, policy.first_draws) == (50, None, 8)
    assert RefreshPolicy.from_config(SamplerConfig(refresh_every_draws=4)).first_draws == 4
