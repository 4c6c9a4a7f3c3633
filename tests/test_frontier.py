"""Frontier LP: its update and its distribution against hand-computed values, its
eviction, and that learning progress stays the default of ``CurriculumConfig()``, unchanged.
(Lua-vs-Python bit equality and four real processes: tests/test_algorithms.py, parametrized over it.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, LearningProgressConfig, SamplerConfig
from curriculum_redis.algorithms import get_algorithm, parse_config
from curriculum_redis.algorithms.frontier import (
    FrontierConfig,
    discovering,
    frontier_parts,
    gap_noise_factor,
    label_heat,
    rank_probabilities,
    settle,
)
from curriculum_redis.errors import ConfigError
from curriculum_redis.labels import label_hash
from curriculum_redis.store.base import ScoreSnapshot

CFG = FrontierConfig()
HAND = FrontierConfig(rand_task_rate=0.03)
"""The by-hand checks below use a small uniform part."""


def test_defaults_are_the_studys() -> None:
    ema = (CFG.fast_alpha, CFG.slow_alpha, CFG.gap_z, CFG.low_success_weight, CFG.min_samples)
    assert ema == (0.2, 0.05, 2, 0.5, 2)
    retry = (CFG.rank_beta, CFG.retry_mass, CFG.retry_floor, CFG.heat_scale, CFG.zero_slow)
    assert retry == (0.5, 0.6, 0.01, 0.2, 0.05)
    assert CFG.rand_task_rate == 0.25  # a quarter uniform: what won across the whole quality suite
    assert CFG.discovery_wins == 6
    assert CFG.settled_rank_weight == 0.0


def test_gap_noise_factor_by_hand() -> None:
    # 0.2/1.8 + 0.05/1.95 - 2*0.2*0.05/(0.25 - 0.01)
    assert gap_noise_factor(0.2, 0.05) == pytest.approx(0.1111111111 + 0.0256410256 - 0.0833333333, abs=1e-9)


def test_update_by_hand() -> None:
    alg = get_algorithm("frontier")
    state = {"completions": 0.0, "frontier": 0.0, "fast": 0.0, "slow": 0.0, "sq": 0.0, "wins": 0.0}
    assert alg.update(state, 1.0, 1.0, CFG, 1) == 0.0  # first outcome: fast = slow = sq = wins = 1, no gap
    assert (state["fast"], state["slow"], state["sq"], state["wins"]) == (1.0, 1.0, 1.0, 1.0)
    state["completions"] = 1.0
    score = alg.update(state, 0.0, 0.0, CFG, 2)
    assert (state["fast"], state["slow"], state["sq"], state["wins"]) == pytest.approx((0.8, 0.95, 0.95, 1.0))
    # gap 0.15 - 2 sqrt(noise * (0.95 - 0.9025)) + 0.5 * 0.8 * 0.2^2
    noise = gap_noise_factor(0.2, 0.05)
    assert score == pytest.approx(0.15 - 2 * math.sqrt(noise * 0.0475) + 0.016, abs=1e-12)
    assert score == pytest.approx(0.065254, abs=1e-6)


def test_rank_weights_put_young_tasks_first_then_score_descending_ties_sharing_their_ranks() -> None:
    young = np.array([False, True, False, False])
    p = rank_probabilities(young, np.array([0.0, 0.0, 0.3, 0.0]), 0.5)
    # ranks: task 1 (young) 1, task 2 (0.3) 2, tasks 0 and 3 share ranks 3 and 4: (1/9 + 1/16) / 2 each
    total = 1 + 1 / 4 + 1 / 9 + 1 / 16
    tied = (1 / 9 + 1 / 16) / 2 / total
    np.testing.assert_allclose(p, [tied, 1 / total, 1 / 4 / total, tied])


def test_rank_weights_do_not_depend_on_pool_order() -> None:
    # A pool's order follows its generator's (which may list easy tasks first): permuting it permutes p.
    rng = np.random.default_rng(5)
    young = rng.random(40) < 0.2
    score = np.round(rng.random(40), 1) * (rng.random(40) < 0.5)  # many ties, many zeros
    p = rank_probabilities(young, score, 0.5)
    for _ in range(5):
        perm = rng.permutation(40)
        np.testing.assert_allclose(rank_probabilities(young[perm], score[perm], 0.5), p[perm], rtol=1e-12)
    assert np.ptp(p[young]) == pytest.approx(0.0, abs=1e-15)  # young tasks all tie


def test_label_heat_is_the_labels_best_fast_over_tau_capped_at_one() -> None:
    heat = label_heat(np.array([7, 7, 9, 5]), np.array([0.0, 0.1, 0.02, 0.9]), 0.2)
    np.testing.assert_allclose(heat, [0.5, 0.5, 0.1, 1.0])


def four_tasks(clock: int = 50) -> dict[str, np.ndarray | int]:
    """A young task; a half-solved one; a never-solved one beside it (same label, hot); a never-solved one
    in a label never solved (cold)."""
    return {
        "completions": np.array([1.0, 5.0, 5.0, 5.0]),
        "last_episode": np.array([49.0, 48.0, 10.0, 40.0]),
        "labels": np.array([3, 1, 1, 2]),
        "fast": np.array([0.0, 0.6, 0.0, 0.0]),
        "slow": np.array([0.0, 0.5, 0.0, 0.0]),
        "score": np.array([0.0, 0.1, 0.0, 0.0]),
        "wins": np.array([0.0, 3.0, 0.0, 0.0]),
        "clock": clock,
    }


def distribution(cfg: FrontierConfig = HAND, **changes: np.ndarray) -> np.ndarray:
    data = {**four_tasks(), **changes}
    return frontier_parts(**data, cfg=cfg).probabilities()  # type: ignore[arg-type]


def test_distribution_by_hand() -> None:
    total = 1 + 1 / 4 + 1 / 9 + 1 / 16  # ranks: young, 0.1, then the two zeros sharing ranks 3 and 4
    tied = (1 / 9 + 1 / 16) / 2
    p_score = np.array([1, 1 / 4, tied, tied]) / total
    w_hot, w_cold = (50 - 10 + 1) * (0.01 + 1.0), (50 - 40 + 1) * (0.01 + 0.0)
    mass = 0.6 * (0.01 + 1.0) / (0.01 + 1.0)  # the hottest zero task's label is fully hot: all of rho
    p_retry = mass * np.array([0, 0, w_hot, w_cold]) / (w_hot + w_cold)
    expected = (1 - 0.03 - mass) * p_score + p_retry + 0.03 / 4
    np.testing.assert_allclose(distribution(), expected, rtol=1e-12)
    assert distribution().sum() == pytest.approx(1.0)
    parts = frontier_parts(**four_tasks(), cfg=HAND)  # type: ignore[arg-type]
    np.testing.assert_allclose(parts.rank, (1 - 0.03 - mass) * p_score, rtol=1e-12)
    np.testing.assert_allclose(parts.retry, p_retry, rtol=1e-12)
    np.testing.assert_allclose(parts.uniform, np.full(4, 0.03 / 4), rtol=1e-12)
    assert parts.young.tolist() == [True, False, False, False]


def test_settled_tasks_give_their_rank_weight_to_tasks_being_learnt() -> None:
    # Task 0 mastered (95 of 100, own label), task 1 being learnt, task 2 never won in 200 tries of a cold
    # label (hopeless), task 3 never won in 199 (not yet), task 4 won 90 of 99 (too little evidence).
    p = np.array([0.1, 0.5, 0.1, 0.1, 0.2])
    completions = np.array([100.0, 50.0, 200.0, 199.0, 99.0])
    wins = np.array([95.0, 20.0, 0.0, 0.0, 90.0])
    fast = np.array([1.0, 0.6, 0.0, 0.0, 1.0])
    labels = np.array([1, 2, 3, 4, 5])
    zero = wins == 0.0
    heat = label_heat(labels, fast, CFG.heat_scale)
    for weight in (0.0, 0.1):
        out = settle(p, completions, heat, wins, zero, FrontierConfig(settled_rank_weight=weight))
        freed = (1 - weight) * 0.2
        np.testing.assert_allclose(out, [0.1 * weight, 0.5 * (1 + freed / 0.7), 0.1 * weight, 0.1,
                                         0.2 * (1 + freed / 0.7)], rtol=1e-12)  # fmt: skip
        assert out.sum() == pytest.approx(1.0)
    # a hot label keeps its never-won task (a cell not reached yet beside solved ones); nothing to learn: unchanged
    hot = settle(p, completions, label_heat(np.array([1, 2, 2, 4, 5]), fast, CFG.heat_scale), wins, zero, CFG)
    assert hot[2] == 0.1
    none_learning = settle(p, completions, heat, wins, np.array([False, True, True, True, True]), CFG)
    np.testing.assert_array_equal(none_learning, p)


def test_cold_labels_get_almost_no_retry_mass() -> None:
    # The hot label's task solved nothing either: every zero task's label is cold (heat 0).
    p = distribution(fast=np.array([0.0, 0.0, 0.0, 0.0]), slow=np.array([0.0, 0.01, 0.0, 0.0]))
    total = 1 + 1 / 4 + 1 / 9 + 1 / 16
    p_score = np.array([1, 1 / 4, (1 / 9 + 1 / 16) / 2, (1 / 9 + 1 / 16) / 2]) / total
    mass = 0.6 * 0.01 / 1.01
    # task 1 now has slow 0.01 < zero_slow: it is zero too; weights stale * h
    w = np.array([0, (50 - 48 + 1) * 0.01, (50 - 10 + 1) * 0.01, (50 - 40 + 1) * 0.01])
    expected = (1 - 0.03 - mass) * p_score + mass * w / w.sum() + 0.03 / 4
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_a_fresh_discovery_gives_the_retry_its_whole_mass_even_with_one_label_per_task() -> None:
    # Every task its own label (no label is hot but the solved task's own). Task 1 was just solved (3 wins,
    # winning now): the frontier moves, so the never-solved tasks 2 and 3 share all of rho by staleness.
    labels = np.array([3, 1, 5, 2])
    fresh = distribution(labels=labels)
    stale = np.array([0, 0, 50 - 10 + 1, 50 - 40 + 1]) * 0.01  # h + heat, heat 0: their labels are their own
    total = 1 + 1 / 4 + 1 / 9 + 1 / 16
    tied = (1 / 9 + 1 / 16) / 2
    p_score = np.array([1, 1 / 4, tied, tied]) / total
    expected = (1 - 0.03 - 0.6) * p_score + 0.6 * stale / stale.sum() + 0.03 / 4
    np.testing.assert_allclose(fresh, expected, rtol=1e-12)
    # Long solved (20 wins), or solved from its first tries, or solved once long ago (fast decayed below
    # heat_scale), or the option off:
    # no discovery, and the cold retry gets almost nothing.
    for changes, cfg in (
        ({"wins": np.array([0.0, 20.0, 0.0, 0.0])}, HAND),
        ({"completions": np.array([1.0, 3.0, 5.0, 5.0])}, HAND),  # 3 wins of 3: never failed
        ({"fast": np.array([0.0, 0.1, 0.0, 0.0])}, HAND),
        ({}, HAND.model_copy(update={"discovery_wins": 0})),
    ):
        quiet = distribution(cfg, labels=labels, **changes)
        assert quiet[2] + quiet[3] < 0.15 < 0.6 < fresh[2] + fresh[3], changes  # only ranks and uniform left
    assert discovering(np.array([3.0, 8.0]), np.array([0.0, 6.0]), np.array([0.0, 0.2]), HAND) == 1.0
    assert discovering(np.array([3.0, 9.0]), np.array([0.0, 7.0]), np.array([0.0, 0.9]), HAND) == 0.0
    # solved from its first tries (one failure, not two): a new easy task, no discovery
    assert discovering(np.array([3.0, 7.0]), np.array([0.0, 6.0]), np.array([0.0, 0.9]), HAND) == 0.0


def test_without_zero_tasks_only_the_ranks_and_the_uniform_part_remain() -> None:
    wins = np.array([0.0, 3.0, 1.0, 1.0])
    slow = np.array([0.0, 0.5, 0.1, 0.2])
    total = 1 + 1 / 4 + 1 / 9 + 1 / 16
    tied = (1 / 9 + 1 / 16) / 2  # tasks 2 and 3 both score 0
    expected = 0.97 * np.array([1, 1 / 4, tied, tied]) / total + 0.03 / 4
    np.testing.assert_allclose(distribution(wins=wins, slow=slow), expected, rtol=1e-12)


def test_distribution_of_an_empty_pool_and_of_a_snapshot() -> None:
    assert frontier_parts(*(np.zeros(0),) * 7, clock=0, cfg=CFG).probabilities().size == 0  # type: ignore[call-arg]
    alg = get_algorithm("frontier")
    data = four_tasks()
    records = np.zeros(4, dtype=alg.dtype())
    for name, column in (("completions", "completions"), ("last_episode", "last_episode"),
                         ("label_hash", "labels"), ("fast", "fast"), ("slow", "slow"),
                         ("frontier", "score"), ("wins", "wins")):  # fmt: skip
        records[name] = data[column]
    snap = ScoreSnapshot(0, records, episode_clock=50)
    np.testing.assert_allclose(alg.distribution(snap, HAND), distribution(), rtol=1e-12)


def test_eviction_takes_mastered_tasks_never_unsolved_ones() -> None:
    alg = get_algorithm("frontier")
    records = np.zeros(4, dtype=alg.dtype())
    records["completions"] = [9, 9, 9, 1]
    records["wins"] = [0, 9, 5, 1]
    records["slow"] = [0.0, 0.95, 0.5, 1.0]
    records["frontier"] = [0.0, 0.0, 0.2, 0.0]
    cfg = CFG.model_copy(update={"min_presentations_for_eviction": 5})
    idx, _ = alg.eviction_candidates(ScoreSnapshot(0, records), cfg, 4)
    assert idx.tolist() == [1]


def snapshot_of(**columns: list[float]) -> ScoreSnapshot:
    records = np.zeros(len(next(iter(columns.values()))), dtype=get_algorithm("frontier").dtype())
    for name, values in columns.items():
        records[name] = values
    return ScoreSnapshot(0, records, episode_clock=1000)


def test_eviction_gives_up_on_long_unsolved_tasks_of_cold_labels_only() -> None:
    # Task 0: 20 failures in a label never solved (given up). Task 1: 19 failures there (not yet).
    # Task 2: 40 failures, but its label is hot (task 3 solves it now): the frontier, kept.
    snap = snapshot_of(
        completions=[20, 19, 40, 30], wins=[0, 0, 0, 25], slow=[0, 0, 0, 0.9], fast=[0, 0, 0, 0.9],
        label_hash=[7, 7, 9, 9], frontier=[0, 0, 0, 0.3],
    )
    alg = get_algorithm("frontier")
    assert CFG.give_up_after == 20
    idx, _ = alg.eviction_candidates(snap, CFG, 4)
    assert idx.tolist() == [0]
    idx, _ = alg.eviction_candidates(snap, CFG.model_copy(update={"give_up_after": 50}), 4)
    assert idx.tolist() == []


def test_admission_odds_by_the_labels_standing_in_the_pool() -> None:
    # Label 1: never solved (cold). Label 2: mastered (won 19 of 20). Label 3: being learnt. Label 4: unseen.
    snap = snapshot_of(
        completions=[30, 10, 10, 12, 0],
        wins=[0, 10, 9, 6, 0],
        fast=[0, 1.0, 0.9, 0.5, 0],
        slow=[0, 1.0, 0.9, 0.5, 0],
        label_hash=[1, 2, 2, 3, 3],
    )
    odds = get_algorithm("frontier").admission_weights(snap, CFG, np.array([1, 2, 3, 4, 1]))
    assert odds is not None
    assert odds.tolist() == [CFG.retry_floor, 0.1, 1.0, 1.0, CFG.retry_floor]
    # A label needs 10 outcomes before it counts as mastered.
    few = snapshot_of(completions=[5], wins=[5], fast=[1.0], slow=[1.0], label_hash=[2])
    assert get_algorithm("frontier").admission_weights(few, CFG, np.array([2])).tolist() == [1.0]  # type: ignore[union-attr]
    assert get_algorithm("frontier").admission_weights(snapshot_of(completions=[]), CFG, np.array([1])) is None


def test_the_retry_cap_bounds_a_lone_cold_task_not_a_hot_one() -> None:
    # 64 tasks: 62 solved (one a fresh discovery: 3 wins, winning now), and one never-solved task.
    n = 64
    wins = np.full(n, 30.0)
    wins[0], wins[1] = 3.0, 0.0
    fast = np.full(n, 0.95)
    fast[1] = 0.0
    slow = np.where(wins > 0, 0.9, 0.0)
    labels = np.arange(n)  # the never-solved task's label is its own: cold
    args = dict(completions=np.full(n, 40.0), last_episode=np.full(n, 900.0), fast=fast, slow=slow,
                score=np.full(n, 0.01), wins=wins, clock=1000)  # fmt: skip
    cold = frontier_parts(labels=labels, cfg=CFG, **args).probabilities()  # type: ignore[arg-type]
    # every score ties (rank share 1/n); the retry part gives task 1 its cap 4/n and nothing else
    assert cold[1] == pytest.approx((1 - 0.25 - 4 / n) / n + 4 / n + 0.25 / n, rel=1e-12)
    assert cold[1] < 0.1  # uncapped, the discovery would hand it all 0.6 of the retry part
    labels[1] = labels[2]  # the same task in a hot label: the frontier of a block being solved, uncapped
    hot = frontier_parts(labels=labels, cfg=CFG, **args).probabilities()  # type: ignore[arg-type]
    assert hot[1] > 0.6


def test_retry_mass_and_uniform_rate_cannot_exceed_one() -> None:
    with pytest.raises((ConfigError, ValueError)):
        FrontierConfig(retry_mass=0.9, rand_task_rate=0.2)


def test_frontier_is_the_default_and_learning_progress_the_reference_preset() -> None:
    """Frontier LP is the default: it beat the previous default (learning progress) on every benchmark of
    the quality suite (README, "Curriculum quality"); the replaced system's algorithm stays available."""
    gen = BucketedTaskGenerator({}, {"level": [0, 1, 2]})
    assert CurriculumConfig(task_generator=gen).algorithm == FrontierConfig()
    assert parse_config({}) == FrontierConfig()
    assert LearningProgressConfig.preset("reference") == LearningProgressConfig()
    named = CurriculumConfig(task_generator=gen, algorithm={"algorithm": "learning_progress"})
    assert named.algorithm == LearningProgressConfig()


def test_the_default_sampler_refreshes_as_the_algorithm_recommends() -> None:
    # Frontier steers every ~10 draws (larger pools less often: a refresh reads the whole pool); the others
    # change slowly and refresh every 1,000 draws unless the sampler config says otherwise.
    assert SamplerConfig().refresh_every_draws is None
    assert FrontierConfig().refresh_every_draws() == 10
    assert FrontierConfig(num_active_tasks=10_000).refresh_every_draws() == 400
    assert LearningProgressConfig().refresh_every_draws() == 1000
    gen = BucketedTaskGenerator({}, {"level": [0, 1, 2]})
    for algorithm, every in ((FrontierConfig(), 10), (LearningProgressConfig(), 1000)):
        c = Curriculum(CurriculumConfig(task_generator=gen, algorithm=algorithm))
        assert c._policy.every_draws == every
        c.close()
    c = Curriculum(CurriculumConfig(task_generator=gen, sampler=SamplerConfig(refresh_every_draws=77)))
    assert c._policy.every_draws == 77
    c.close()


def test_a_curriculum_with_the_default_steers_towards_the_learnable_task() -> None:
    """In memory, with every default (frontier, refreshed every 10 draws) over a finite space: a level never
    solved (impossible) gets far less than a third of the draws once a learnable level shows progress, and
    the learnable level most."""
    gen = BucketedTaskGenerator({}, {"level": [0, 1, 2]}, label="lvl", finite=True)
    c = Curriculum(CurriculumConfig(task_generator=gen, seed=1))
    drawn = {0: 0, 1: 0, 2: 0}
    rng = np.random.default_rng(0)
    for episode in range(600):
        task = c.get_task()
        level = int(task.env_cfg["level"])
        drawn[level] += episode >= 300
        # level 0 is learnt slowly, level 1 is always solved, level 2 never
        p = {0: min(1.0, episode / 600), 1: 1.0, 2: 0.0}[level]
        c.update_task_performance(task.task_id, float(rng.random() < p))
    c.close()
    assert drawn[2] < 0.2 * 300 and drawn[0] > 0.55 * 300  # about 0.16 and 0.65 over seeds 0..2


def endless_run(cfg: FrontierConfig, episodes: int = 4000) -> tuple[float, float]:
    """An endless generator of two labels, one never solved and one always solved (each task mastered at
    once, so the pool keeps evicting and admitting): the share of late draws on the dead label, and its
    share of the pool at the end."""
    gen = BucketedTaskGenerator({}, {"kind": ["dead", "easy"]}, label="k")
    c = Curriculum(CurriculumConfig(task_generator=gen, algorithm=cfg, seed=2))
    dead = 0
    for episode in range(episodes):
        task = c.get_task()
        is_dead = task.env_cfg["kind"] == "dead"
        dead += is_dead and episode >= episodes // 2
        c.update_task_performance(task.task_id, 0.0 if is_dead else 1.0)
    pool = [c.config.generator.get_task(t).env_cfg["kind"] for t in c.probabilities()]
    c.close()
    return dead / (episodes - episodes // 2), pool.count("dead") / len(pool)


def test_an_endless_generator_does_not_fill_the_pool_with_tasks_never_solved() -> None:
    """Never-solved tasks of a cold label are given up on (evicted after ``give_up_after`` outcomes) and
    their label is admitted again with low odds; without that the pool fills with them (mastered tasks
    leave, dead ones stay) and nearly every draw goes to them."""
    drawn, held = endless_run(FrontierConfig(num_active_tasks=32))
    drawn_kept, held_kept = endless_run(FrontierConfig(num_active_tasks=32, give_up_after=10**9))
    assert held_kept > 0.9 and drawn_kept > 0.8  # 1.0 and 0.93
    assert drawn < 0.4 and held < 0.75  # 0.32 and 0.66; uniform sampling over the generator: 0.5


def test_replacements_are_picked_by_the_algorithms_admission_odds(monkeypatch: pytest.MonkeyPatch) -> None:
    """With odds 0 for the dead label, dead tasks leave (given up on) and hardly any take their place."""
    alg = get_algorithm("frontier")
    dead = label_hash("k:kind=dead")

    def odds(snapshot: ScoreSnapshot, cfg: FrontierConfig, label_hashes: np.ndarray) -> np.ndarray:
        return np.where(label_hashes == dead, 0.0, 1.0)

    def created_dead() -> tuple[float, float]:
        gen = BucketedTaskGenerator({}, {"kind": ["dead", "easy"]}, label="k")
        c = Curriculum(CurriculumConfig(task_generator=gen, algorithm=FrontierConfig(num_active_tasks=32), seed=2))
        for _ in range(3000):
            task = c.get_task()
            c.update_task_performance(task.task_id, 0.0 if task.env_cfg["kind"] == "dead" else 1.0)
        stats = c.stats()
        c.close()
        return stats["label/k:kind=dead/created"], stats["label/k:kind=dead/evictions"]

    created, evicted = created_dead()
    monkeypatch.setattr(alg, "admission_weights", odds)
    created_never, evicted_never = created_dead()
    # 62 and 35 (seed 2): with odds 0 a dead task enters only when all 4 candidates of a slot are dead
    assert evicted > 0 and evicted_never > 0
    assert created >= 50 and created_never <= 40
