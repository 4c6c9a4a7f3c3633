"""The Curriculum facade end to end on the in-process MemoryStore (no Redis needed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from curriculum_redis import LearningProgressConfig
from curriculum_redis.algorithms.learning_progress import eviction_candidates
from curriculum_redis.config import BufferConfig, CurriculumConfig, SamplerConfig
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.errors import ConfigError, HyperparameterMismatchError, InvalidScoreError
from curriculum_redis.labels import label_hash
from curriculum_redis.state import TaskRecord
from curriculum_redis.store.base import Eviction, EvictionOutcome, Outcome, OutcomeBatch, ScoreSnapshot
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.tasks import BucketedTaskGenerator, SingleTaskGenerator, Task, TaskGenerator, TaskGeneratorSet

CAPACITY = 16
FLAT = ("impossible", "mastered")


def _three_kinds() -> TaskGeneratorSet:
    return TaskGeneratorSet([SingleTaskGenerator({"kind": k}, label=k) for k in ("rising", "impossible", "mastered")])


def _many_labels() -> BucketedTaskGenerator:
    return BucketedTaskGenerator({"game": {}}, {"game.size": list(range(40)), "game.mode": ["a", "b"]}, label="maze")


def _config(
    generator: TaskGenerator | None = None, seed: int = 0, batch_size: int = 16, **algo: Any
) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=generator or _three_kinds(),
        seed=seed,
        algorithm=LearningProgressConfig(num_active_tasks=CAPACITY, **algo),
        buffer=BufferConfig(batch_size=batch_size, max_age_s=3600.0),
        sampler=SamplerConfig(refresh_every_draws=50, refresh_every_s=3600.0),
    )


@pytest.fixture
def make() -> Iterator[Callable[..., Curriculum]]:
    made: list[Curriculum] = []

    def factory(config: CurriculumConfig, store: MemoryStore | None = None) -> Curriculum:
        cur = Curriculum(config) if store is None else Curriculum(config, store)
        made.append(cur)
        return cur

    yield factory
    for cur in made:
        cur.close()


class Student:
    """Scores by label: 'rising' tasks improve with each own play, 'impossible' 0, 'mastered' 1."""

    def __init__(self, ramp: int = 300) -> None:
        self.played: Counter[int] = Counter()
        self.ramp = ramp

    def score(self, task: Task) -> float:
        self.played[task.task_id] += 1
        if task.label == "rising":
            return min(1.0, self.played[task.task_id] / self.ramp)
        return 0.0 if task.label == "impossible" else 1.0


def _play(cur: Curriculum, episodes: int, student: Student | None = None,
          check: Callable[[int], None] | None = None) -> Student:
    student = student or Student()
    for episode in range(episodes):
        task = cur.get_task()
        cur.update_task_performance(task.task_id, student.score(task))
        if check is not None:
            check(episode)
    cur.flush()
    return student


def _random_play(cur: Curriculum, episodes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        task = cur.get_task()
        cur.update_task_performance(task.task_id, float(rng.random()))
    cur.flush()


@dataclass
class EvictionRecord:
    victim: TaskRecord
    eviction: Eviction
    decided_from: ScoreSnapshot
    replacement_after: TaskRecord | None


class AuditingStore(MemoryStore):
    """A MemoryStore that remembers each eviction with the victim's state and the snapshot behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.last_snapshot: ScoreSnapshot | None = None
        self.evictions: list[EvictionRecord] = []
        self.evictions_per_snapshot: list[int] = []
        self.max_pool = 0

    def snapshot(self) -> ScoreSnapshot:
        snap = super().snapshot()
        self.last_snapshot = snap
        self.evictions_per_snapshot.append(0)
        self.max_pool = max(self.max_pool, snap.size)
        return snap

    def evict_and_replace(self, eviction: Eviction) -> EvictionOutcome:
        victim = self.read_task(eviction.victim_id)
        outcome = super().evict_and_replace(eviction)
        if outcome == "evicted":
            assert victim is not None and self.last_snapshot is not None
            self.evictions.append(
                EvictionRecord(victim, eviction, self.last_snapshot, self.read_task(eviction.replacement.task_id))
            )
            self.evictions_per_snapshot[-1] += 1
        return outcome


def _labels_of(cur: Curriculum) -> dict[int, str]:
    gen = cur.config.task_generator
    return {tid: gen.get_task(tid).label for tid in cur.probabilities()}


# --------------------------------------------------------------------------- sampling


def test_get_task_returns_tasks_of_the_pool_built_by_the_generator(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    gen = cur.config.task_generator
    for _ in range(200):
        task = cur.get_task()
        assert task in (gen.get_task(tid) for tid in cur.probabilities())
        assert cur.store.read_task(task.task_id) is not None
        assert task == gen.get_task(task.task_id)
    assert len(cur.probabilities()) == CAPACITY
    assert sum(cur.probabilities().values()) == pytest.approx(1.0)


def test_first_use_fills_the_pool_to_capacity(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    assert isinstance(cur.store, MemoryStore)  # redis_url=None keeps the state in this process
    cur.get_task()
    stats = cur.stats()
    assert stats["num_active_tasks"] == CAPACITY
    assert stats["num_created"] == CAPACITY
    assert stats["num_evicted"] == 0
    assert all(1 <= tid < 2**31 for tid in cur.probabilities())


def test_rising_tasks_end_with_more_probability_than_flat_ones(make: Callable[..., Curriculum]) -> None:
    cur = make(_config(max_evictions_per_refresh=0))
    _play(cur, 2000)
    cur.refresh()
    probs = cur.probabilities()
    labels = _labels_of(cur)
    by_label: dict[str, list[float]] = {}
    for tid, p in probs.items():
        by_label.setdefault(labels[tid], []).append(p)
    assert set(by_label) == {"rising", "impossible", "mastered"}, "seed 0 should draw every kind"
    rising_mean = float(np.mean(by_label["rising"]))
    flat_max = max(p for label in FLAT for p in by_label[label])
    assert rising_mean > 10 * flat_max
    assert sum(by_label["rising"]) > 0.6
    table = cur.label_table()
    assert table["rising"]["sampling_probability"] == pytest.approx(sum(by_label["rising"]))
    assert table["rising"]["active_score"] > table["impossible"]["active_score"] == 0.0
    assert table["mastered"]["active_score"] == 0.0


def test_young_tasks_reach_eligibility_without_eviction(make: Callable[..., Curriculum]) -> None:
    cur = make(_config(max_evictions_per_refresh=0))
    _play(cur, 2000)
    completions = cur.store.snapshot().column("completions")
    assert completions.size == CAPACITY
    assert completions.min() >= 10
    assert completions.sum() == 2000


def test_with_eviction_the_pool_fills_with_rising_tasks_that_get_most_samples(
    make: Callable[..., Curriculum],
) -> None:
    # Generated tasks are 1/3 rising; flat ones lose their slots and rising ones take the samples.
    cur = make(_config())
    _play(cur, 3000)
    table = cur.label_table()
    assert table["rising"]["samples"] > 0.5 * 3000
    assert table["rising"]["active"] > table["impossible"]["active"] + table["mastered"]["active"]
    for flat in FLAT:
        assert table[flat]["evictions"] >= table[flat]["created"] - table[flat]["active"] > 30
        assert table[flat]["samples"] < 0.25 * 3000


# --------------------------------------------------------------------------- eviction


def test_eviction_keeps_the_pool_at_capacity_and_evicts_only_qualifying_tasks(
    make: Callable[..., Curriculum],
) -> None:
    store = AuditingStore()
    cur = make(_config(), store)
    hypers = cur.config.algorithm

    def check(episode: int) -> None:
        if episode % 25 == 0:
            stats = cur.stats()
            assert stats["num_active_tasks"] == CAPACITY
            assert stats["num_created"] == CAPACITY + stats["num_evicted"]

    _play(cur, 2000, check=check)
    assert store.max_pool == CAPACITY
    assert len(store.evictions) > 20
    assert cur.stats()["num_evicted"] == len(store.evictions)
    assert max(store.evictions_per_snapshot) <= hypers.max_evictions_per_refresh
    for record in store.evictions:
        snap = record.decided_from
        threshold = float(np.quantile(snap.column("lp"), hypers.eviction_threshold_percentile))
        assert record.eviction.reason == "low_score"
        assert record.victim.completions >= hypers.min_presentations_for_eviction
        assert record.victim.lp <= threshold
        assert record.eviction.max_score == pytest.approx(threshold)
        # It was among the lowest-LP qualifying tasks of that snapshot.
        idx, _ = eviction_candidates(snap.column("completions"), snap.column("lp"), hypers, CAPACITY)
        assert record.victim.task_id in snap.task_ids[idx].tolist()


def test_evicted_slot_replacement_starts_from_zero_with_its_own_label(make: Callable[..., Curriculum]) -> None:
    store = AuditingStore()
    cur = make(_config(), store)
    _play(cur, 1500)
    relabelled = [r for r in store.evictions if r.victim.label != r.eviction.replacement.label]
    assert relabelled, "expected at least one eviction that changed the slot's label"
    for record in store.evictions:
        fresh = record.replacement_after
        replacement = record.eviction.replacement
        assert fresh is not None
        assert fresh.slot == record.victim.slot  # same slot reused ...
        assert fresh.label == replacement.label  # ... without the victim's label (reference bug 2.1)
        assert fresh.label_hash == label_hash(replacement.label)
        assert fresh.completions == 0
        assert fresh.consecutive_failures == 0
        for name in ("score_sum", "last_score", "reward_ema", "reward_sq_ema", "success_ema",
                     "p_fast", "p_slow", "p_true", "baseline", "lp"):
            assert getattr(fresh, name) == 0.0, name
    for record in store.evictions:
        assert store.read_task(record.victim.task_id) is None


def test_direct_evict_and_replace_resets_slot_and_moves_label_counts(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    _play(cur, 400)
    store = cur.store
    gen = cur.config.task_generator
    victim = max(cur.probabilities(), key=lambda tid: store.read_task(tid).completions)  # type: ignore[union-attr]
    before = store.read_task(victim)
    assert before is not None and before.completions > 0
    new_label = next(lbl for lbl in ("rising", "impossible", "mastered") if lbl != before.label)
    new_id = next(i for i in range(10**6, 10**6 + 1000) if gen.get_task(i).label == new_label)
    stats_before = store.label_stats()
    assert store.evict_and_replace(Eviction(victim, gen.get_task(new_id), min_presentations=1)) == "evicted"
    fresh = store.read_task(new_id)
    assert store.read_task(victim) is None
    assert fresh is not None
    assert (fresh.slot, fresh.label, fresh.label_hash, fresh.completions, fresh.lp) == (
        before.slot, new_label, label_hash(new_label), 0, 0.0)
    after = store.label_stats()
    assert after[before.label_hash].evicted == stats_before[before.label_hash].evicted + 1
    assert after[before.label_hash].active == stats_before[before.label_hash].active - 1
    assert after[label_hash(new_label)].active == stats_before[label_hash(new_label)].active + 1
    # A second attempt finds the victim gone and changes nothing.
    assert store.evict_and_replace(Eviction(victim, gen.get_task(2 * 10**6))) == "victim_gone"
    assert store.read_task(2 * 10**6) is None


def test_store_refuses_to_evict_a_task_that_does_not_qualify(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    cur.get_task()
    tid = next(iter(cur.probabilities()))
    replacement = cur.config.task_generator.get_task(123_456_789)
    assert cur.store.evict_and_replace(Eviction(tid, replacement, min_presentations=5)) == "victim_not_evictable"
    assert cur.store.read_task(tid) is not None
    assert cur.store.read_task(123_456_789) is None
    assert cur.store.counters()["num_evicted"] == 0


def test_three_failures_in_a_row_evict_the_task_at_next_refresh(make: Callable[..., Curriculum]) -> None:
    cur = make(_config(min_presentations_for_eviction=100))
    task = cur.get_task()
    for _ in range(3):
        cur.report_task_failure(task.task_id)
    cur.flush()
    record = cur.store.read_task(task.task_id)
    assert record is not None and record.consecutive_failures == 3 and record.completions == 3
    assert task.task_id in cur.probabilities()  # not before the refresh
    cur.refresh()
    assert task.task_id not in cur.probabilities()
    assert cur.store.read_task(task.task_id) is None
    stats = cur.stats()
    assert stats["num_failures"] == 3
    assert stats["num_evicted"] == 1
    assert stats["num_active_tasks"] == CAPACITY
    assert stats[f"label/{task.label}/evictions"] == 1


def test_failures_interrupted_by_a_score_do_not_evict(make: Callable[..., Curriculum]) -> None:
    cur = make(_config(min_presentations_for_eviction=100))
    task = cur.get_task()
    cur.report_task_failure(task.task_id)
    cur.report_task_failure(task.task_id)
    cur.update_task_performance(task.task_id, 1.0)
    cur.report_task_failure(task.task_id)
    cur.report_task_failure(task.task_id)
    cur.flush()
    cur.refresh()
    record = cur.store.read_task(task.task_id)
    assert record is not None and record.consecutive_failures == 2
    assert cur.stats()["num_failures"] == 4
    assert cur.stats()["num_evicted"] == 0


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "0.5", None, True])
def test_bad_score_raises_and_leaves_the_state_unchanged(make: Callable[..., Curriculum], bad: Any) -> None:
    cur = make(_config())
    _random_play(cur, 100)
    before = cur.get_state()
    task_id = next(iter(cur.probabilities()))
    with pytest.raises(InvalidScoreError):
        cur.update_task_performance(task_id, bad)
    assert cur.pending_outcomes == 0
    assert cur.get_state() == before


def test_score_for_an_unknown_task_is_counted_not_an_error(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    cur.get_task()
    unknown = next(i for i in range(10**7, 10**7 + 100) if i not in cur.probabilities())
    cur.update_task_performance(unknown, 0.5)
    cur.flush()
    stats = cur.stats()
    assert stats["num_outcomes_for_evicted_tasks"] == 1
    assert stats["num_completed"] == 1
    assert cur.store.read_task(unknown) is None


def test_score_for_a_task_evicted_meanwhile_is_counted(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    task = cur.get_task()
    for _ in range(3):
        cur.report_task_failure(task.task_id)
    cur.flush()
    cur.refresh()  # evicts it
    completed = cur.stats()["num_completed"]
    cur.update_task_performance(task.task_id, 0.7)
    cur.flush()
    stats = cur.stats()
    assert stats["num_outcomes_for_evicted_tasks"] == 1
    assert stats["num_completed"] == completed + 1


@pytest.mark.parametrize("bad_id", ["7", 7.0, True, None, 0, -5, 2**53])
def test_task_id_that_is_not_a_positive_int_raises_config_error(
    make: Callable[..., Curriculum], bad_id: Any
) -> None:
    cur = make(_config())
    with pytest.raises(ConfigError, match="task_id"):
        cur.update_task_performance(bad_id, 0.5)
    with pytest.raises(ConfigError, match="task_id"):
        cur.report_task_failure(bad_id)
    assert cur.pending_outcomes == 0


def test_numpy_integer_task_id_is_accepted(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    tid = next(iter(cur.probabilities()))
    cur.update_task_performance(np.int64(tid), 0.5)  # type: ignore[arg-type]
    cur.flush()
    record = cur.store.read_task(tid)
    assert record is not None and record.completions == 1


def test_scores_are_normalised_with_the_score_range(make: Callable[..., Curriculum]) -> None:
    cur = make(_config(score_range=(-10.0, 10.0)))
    tid = next(iter(cur.probabilities()))
    cur.update_task_performance(tid, 5.0)
    cur.update_task_performance(tid, 50.0)
    cur.flush()
    record = cur.store.read_task(tid)
    assert record is not None
    assert record.score_sum == pytest.approx(0.75 + 1.0)
    assert record.last_score == 1.0


# --------------------------------------------------------------------------- checkpoints


def test_get_state_and_load_state_round_trip_labels_and_label_stats(make: Callable[..., Curriculum]) -> None:
    source = make(_config(_many_labels(), max_evictions_per_refresh=0))
    _random_play(source, 600)
    state = source.get_state()
    assert len(state.labels) >= 10

    target = make(_config(_many_labels(), seed=99, max_evictions_per_refresh=0))
    own_labels = target.store.labels()
    assert own_labels != source.store.labels()  # its first pool (another seed) had other labels
    target.load_state(state)

    assert target.store.labels() == source.store.labels()
    assert target.store.label_stats() == source.store.label_stats()
    assert target.label_table() == source.label_table()
    source.refresh()  # its snapshot predates its last outcomes; the target's is fresh
    assert target.probabilities() == pytest.approx(source.probabilities())
    assert {r.task_id: r for r in target.store.export_state().tasks} == {r.task_id: r for r in state.tasks}
    for tid, label in _labels_of(target).items():
        assert target.store.read_task(tid).label == label  # type: ignore[union-attr]
    target_stats, source_stats = target.stats(), source.stats()
    for key, value in source_stats.items():
        if key.startswith(("label/", "num_", "lp/", "gini/")):
            assert target_stats[key] == pytest.approx(value), key


def test_state_survives_json_and_keeps_label_strings(make: Callable[..., Curriculum]) -> None:
    source = make(_config(_many_labels(), max_evictions_per_refresh=0))
    _random_play(source, 300)
    state = source.get_state()
    back = type(state).model_validate_json(state.model_dump_json())
    assert back == state
    target = make(_config(_many_labels(), seed=5, max_evictions_per_refresh=0))
    target.load_state(back)
    assert set(target.label_table()) == set(source.label_table())
    assert all(not name.isdigit() for name in target.label_table())


def test_loaded_pool_resolves_every_label_even_after_evictions(make: Callable[..., Curriculum]) -> None:
    source = make(_config(_many_labels()))
    _random_play(source, 1500)
    assert source.stats()["num_evicted"] > 0
    target = make(_config(_many_labels(), seed=7))
    target.load_state(source.get_state())
    labels = target.store.labels()
    for record in target.store.export_state().tasks:
        assert labels[record.label_hash] == record.label
    assert all(not name.isdigit() for name in target.label_table())


def test_load_state_restores_the_checkpoint_exactly(make: Callable[..., Curriculum]) -> None:
    source = make(_config())
    _play(source, 500)
    state = source.get_state()
    # Precondition: the checkpoint holds tasks that qualify for eviction (flat tasks with LP 0).
    completions = np.array([t.completions for t in state.tasks], dtype=np.float64)
    lp = np.array([t.lp for t in state.tasks])
    assert eviction_candidates(completions, lp, state.hypers, 4)[0].size > 0
    target = make(_config(seed=3))
    target.load_state(state)
    assert target.store.counters() == state.counters
    assert target.store.label_stats() == state.label_stats
    assert {r.task_id for r in target.store.export_state().tasks} == {r.task_id for r in state.tasks}


def test_outcomes_reported_after_load_state_are_recorded(make: Callable[..., Curriculum]) -> None:
    source = make(_config(max_evictions_per_refresh=0))
    _random_play(source, 300)
    state = source.get_state()
    target = make(_config(max_evictions_per_refresh=0))
    target.load_state(state)
    tid = next(iter(target.probabilities()))
    before = target.store.read_task(tid)
    assert before is not None
    target.update_task_performance(tid, 0.5)
    target.flush()
    after = target.store.read_task(tid)
    assert after is not None and after.completions == before.completions + 1
    assert target.store.counters()["num_duplicate_batches"] == 0


def test_single_process_never_loses_its_own_outcomes_to_its_own_evictions(
    make: Callable[..., Curriculum],
) -> None:
    cur = make(_config())
    _play(cur, 1500)
    stats = cur.stats()
    assert stats["num_evicted"] > 0
    assert stats["num_outcomes_for_evicted_tasks"] == 0
    assert stats["num_completed"] == 1500


def test_load_state_with_other_hypers_is_refused_naming_the_fields(make: Callable[..., Curriculum]) -> None:
    source = make(_config(max_evictions_per_refresh=0))
    _random_play(source, 200)
    state = source.get_state()
    target = make(_config(max_evictions_per_refresh=0, ema_timescale=0.3, random_baseline=0.5))
    target.get_task()
    untouched = target.store.export_state()
    with pytest.raises(HyperparameterMismatchError) as info:
        target.load_state(state)
    message = str(info.value)
    assert "ema_timescale: stored=0.1 given=0.3" in message
    assert "random_baseline: stored=None given=0.5" in message
    assert set(info.value.differences) == {"ema_timescale", "random_baseline"}
    assert target.store.export_state() == untouched
    assert target.hypers.ema_timescale == 0.3


def test_load_state_with_adopt_uses_the_checkpoint_hypers(make: Callable[..., Curriculum]) -> None:
    source = make(_config(_many_labels(), max_evictions_per_refresh=0))
    _random_play(source, 300)
    state = source.get_state()
    config = _config(_many_labels(), max_evictions_per_refresh=0, ema_timescale=0.3)
    config = config.model_copy(update={"algorithm": config.algorithm.model_copy(update={"num_active_tasks": 4})})
    target = make(config)
    assert len(target.probabilities()) == 4
    target.load_state(state, on_mismatch="adopt")
    assert target.hypers == state.hypers
    assert len(target.probabilities()) == CAPACITY
    assert target.store.labels() == source.store.labels()
    assert target.store.label_stats() == source.store.label_stats()


def test_attaching_to_a_store_with_other_hypers_is_refused(make: Callable[..., Curriculum]) -> None:
    store = MemoryStore()
    make(_config(), store).get_task()
    other = make(_config(ema_timescale=0.5), store)
    with pytest.raises(HyperparameterMismatchError, match="ema_timescale"):
        other.get_task()
    adopting = make(_config(ema_timescale=0.5).model_copy(update={"on_mismatch": "adopt"}), store)
    adopting.get_task()
    assert adopting.hypers.ema_timescale == 0.1


# --------------------------------------------------------------------------- statistics


def test_stats_report_counts_pool_and_labels(make: Callable[..., Curriculum]) -> None:
    cur = make(_config(max_evictions_per_refresh=0))
    _play(cur, 500)
    stats = cur.stats()
    for key in ("num_created", "num_evicted", "num_completed", "num_scheduled", "num_active_tasks",
                "num_failures", "num_outcomes_for_evicted_tasks", "gini/sampling_probability", "lp/mean",
                "lp/num_zeros", "probability/mean", "epoch/num_evicted", "epoch/num_completed",
                "label/rising/score_ema", "label/impossible/score_ema", "label/mastered/samples"):
        assert key in stats, key
    assert all(isinstance(v, float) and np.isfinite(v) for v in stats.values())
    assert stats["num_completed"] == 500
    assert stats["num_scheduled"] == 500
    assert stats["num_created"] == CAPACITY
    assert stats["num_active_tasks"] == CAPACITY
    assert sum(stats[f"label/{k}/samples"] for k in ("rising", "impossible", "mastered")) == 500
    assert sum(stats[f"label/{k}/completions"] for k in ("rising", "impossible", "mastered")) == 500
    assert stats["label/impossible/mean_score"] == 0.0
    assert stats["label/mastered/mean_score"] == 1.0
    assert stats["label/mastered/success_rate"] == 1.0
    assert stats["label/impossible/score_ema"] == 0.0
    assert stats["label/rising/score_ema"] > 0.0
    assert stats["lp/num_zeros"] == sum(stats[f"label/{k}/active"] for k in FLAT)


def test_epoch_counters_are_deltas_between_stats_calls(make: Callable[..., Curriculum]) -> None:
    cur = make(_config())
    _play(cur, 600)
    first = cur.stats()
    assert first["epoch/num_evicted"] == first["num_evicted"]
    assert first["epoch/num_scheduled"] == 600
    _play(cur, 900)
    second = cur.stats()
    assert second["epoch/num_scheduled"] == 900
    assert second["epoch/num_completed"] == second["num_completed"] - first["num_completed"] > 0
    assert second["epoch/num_evicted"] == second["num_evicted"] - first["num_evicted"]
    assert second["epoch/num_evicted"] > 0
    third = cur.stats()
    assert third["epoch/num_evicted"] == 0
    assert third["epoch/num_completed"] == 0
    assert third["epoch/num_scheduled"] == 0
    assert third["num_evicted"] == second["num_evicted"]  # the total is never reset


def test_another_reader_does_not_zero_this_readers_epoch_counts(make: Callable[..., Curriculum]) -> None:
    store = MemoryStore()
    worker = make(_config(), store)
    _play(worker, 400)
    first = worker.stats()
    _play(worker, 1200)
    reader = make(_config(), store)
    from_reader = reader.stats()
    assert from_reader["epoch/num_evicted"] == from_reader["num_evicted"]
    again = reader.stats()
    assert again["epoch/num_evicted"] == 0
    second = worker.stats()
    assert second["num_evicted"] == from_reader["num_evicted"]
    assert second["epoch/num_evicted"] == second["num_evicted"] - first["num_evicted"] > 0
    assert second["epoch/num_scheduled"] == 1200
    assert second["epoch/num_completed"] == second["num_completed"] - first["num_completed"] > 0


def test_second_curriculum_on_the_same_store_sees_the_same_pool_and_labels(
    make: Callable[..., Curriculum],
) -> None:
    store = MemoryStore()
    a = make(_config(max_evictions_per_refresh=0), store)
    _play(a, 300)
    b = make(_config(max_evictions_per_refresh=0), store)
    b.refresh()
    assert set(b.probabilities()) == set(a.probabilities())
    assert b.client_id != a.client_id
    assert b.label_table() == a.label_table()


# --------------------------------------------------------------------------- batches


def _store_with_tasks() -> tuple[MemoryStore, list[Task]]:
    store = MemoryStore()
    store.attach(LearningProgressConfig(num_active_tasks=4))
    tasks = [SingleTaskGenerator(label=f"t{i % 2}").get_task(i) for i in range(1, 5)]
    assert store.create_tasks(tasks) == [1, 2, 3, 4]
    return store, tasks


def test_batch_with_same_client_and_seq_is_applied_once() -> None:
    store, tasks = _store_with_tasks()
    h = tasks[0].label_hash
    batch = OutcomeBatch(7, 1, (Outcome(1, h, 0.5), Outcome(1, h, 1.0), Outcome(3, h, 0.0)), {h: 3})
    first = store.record(batch)
    second = store.record(batch)
    assert first.applied and first.recorded == 3
    assert not second.applied and second.recorded == 0
    assert store.read_task(1).completions == 2  # type: ignore[union-attr]
    assert store.read_task(3).completions == 1  # type: ignore[union-attr]
    counters = store.counters()
    assert counters["num_completed"] == 3
    assert counters["num_scheduled"] == 3
    assert counters["num_batches"] == 1
    assert counters["num_duplicate_batches"] == 1
    assert store.label_stats()[h].samples == 3


def test_older_seq_is_refused_but_another_client_with_the_same_seq_is_applied() -> None:
    store, tasks = _store_with_tasks()
    h = tasks[1].label_hash
    assert store.record(OutcomeBatch(1, 5, (Outcome(2, h, 0.5),))).applied
    assert not store.record(OutcomeBatch(1, 4, (Outcome(2, h, 0.5),))).applied
    assert store.record(OutcomeBatch(2, 5, (Outcome(2, h, 0.5),))).applied
    assert store.record(OutcomeBatch(1, 6, (Outcome(2, h, 0.5),))).applied
    assert store.read_task(2).completions == 3  # type: ignore[union-attr]
    assert store.counters()["num_duplicate_batches"] == 1


def test_batch_outcome_for_unknown_task_is_counted() -> None:
    store, tasks = _store_with_tasks()
    result = store.record(OutcomeBatch(1, 1, (Outcome(99, tasks[0].label_hash, 0.5), Outcome(1, 0, 0.2))))
    assert result.applied and result.recorded == 2 and result.for_evicted_tasks == 1
    assert store.counters()["num_outcomes_for_evicted_tasks"] == 1
    assert store.counters()["num_completed"] == 2


def test_create_tasks_never_exceeds_capacity_and_skips_existing_ids() -> None:
    store, _ = _store_with_tasks()
    more = [SingleTaskGenerator().get_task(i) for i in (1, 5, 6)]
    assert store.create_tasks(more) == []
    assert store.snapshot().size == 4
    assert store.counters()["num_created"] == 4


def test_buffered_outcomes_are_written_in_batches_of_batch_size(make: Callable[..., Curriculum]) -> None:
    cur = make(_config(batch_size=10))
    tid = next(iter(cur.probabilities()))
    for _ in range(9):
        cur.update_task_performance(tid, 0.5)
    assert cur.store.read_task(tid).completions == 0  # type: ignore[union-attr]
    assert cur.pending_outcomes == 9
    cur.update_task_performance(tid, 0.5)
    assert cur.store.read_task(tid).completions == 10  # type: ignore[union-attr]
    assert cur.pending_outcomes == 0
