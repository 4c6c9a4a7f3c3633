"""Tests of the shared-memory + Manager-lock baseline used by the benchmarks (no Redis needed)."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `benchmarks` is a top-level package of the repository, not installed
    sys.path.insert(0, _ROOT)

from benchmarks import baseline_shm as bs  # noqa: E402
from benchmarks.baseline_shm import ShmCurriculum  # noqa: E402

DEV_SHM = Path("/dev/shm")
needs_dev_shm = pytest.mark.skipif(not DEV_SHM.is_dir(), reason="needs Linux /dev/shm")


def our_segments() -> set[str]:
    if not DEV_SHM.is_dir():
        return set()
    return {p.name for p in DEV_SHM.iterdir() if p.name.startswith(bs.SHM_PREFIX)}


@pytest.fixture(scope="module")
def shared_lock() -> Iterator[Any]:
    """One Manager lock for the single-process tests (saves starting a manager per test)."""
    manager = mp.get_context(bs.START_METHOD).Manager()
    try:
        yield manager.Lock()
    finally:
        manager.shutdown()


@pytest.fixture
def cur(shared_lock: Any) -> Iterator[ShmCurriculum]:
    with ShmCurriculum(max_tasks=16, lock=shared_lock) as c:
        yield c


# -- the lock ---------------------------------------------------------------------------------------
@pytest.mark.slow  # real processes
def test_four_processes_lose_no_update() -> None:
    """4 spawned workers x 500 updates on 8 contended rows: exactly 2000 completions."""
    ctx = mp.get_context(bs.START_METHOD)
    with ShmCurriculum(max_tasks=8) as c:
        ids = c.create_tasks(8, seed=3)
        barrier = ctx.Barrier(4)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=bs._update_worker, args=(c, ids, 500, rank, barrier, results))
            for rank in range(4)
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert [o[0] for o in outcomes] == ["ok"] * 4
        assert [p.exitcode for p in procs] == [0] * 4
        assert c.completions_total() == 2000
        rows = [c.row(t) for t in ids]
        assert sum(r["completions"] for r in rows) == 2000
        # score_sum is a read-modify-write too: each row's mean score stays a mean of values in [0, 1]
        assert all(0.0 <= r["score_sum"] / r["completions"] <= 1.0 for r in rows if r["completions"])


def test_pickling_keeps_the_same_lock_and_segment(cur: ShmCurriculum) -> None:
    [tid] = cur.create_tasks(1, seed=1)
    copy = pickle.loads(pickle.dumps(cur))
    try:
        assert not copy.is_creator
        assert copy.name == cur.name
        tokens = [getattr(c.lock, "_token") for c in (copy, cur)]  # noqa: B009  (a Manager proxy)
        assert len({(t.typeid, t.address, t.id) for t in tokens}) == 1  # the same server-side lock
        assert copy.update(tid, 0.5)
        assert cur.row(tid)["completions"] == 1.0  # written through the copy, seen by the original
        with pytest.raises(RuntimeError):
            copy.unlink()
    finally:
        copy.close()


# -- the learning-progress maths -------------------------------------------------------------------
def test_ema_math_for_three_outcomes(cur: ShmCurriculum) -> None:
    [tid] = cur.create_tasks(1, seed=2)
    for s in (0.2, 0.6, 1.0):
        assert cur.update(tid, s)
    r = cur.row(tid)
    # first: B = min(0.2, 0.75) = 0.2, p = 0 -> p_fast = p_slow = 0, p_true = 0.2
    # second: p = 0.4/0.8 = 0.5 -> p_fast = 0.05, p_slow = 0.01, p_true = 0.24
    # third: p = 1 -> p_fast = 0.05 + 0.1*0.95 = 0.145, p_slow = 0.01 + 0.02*0.99 = 0.0298,
    #        p_true = 0.24 + 0.1*0.76 = 0.316
    expected = {
        "completions": 3.0,
        "score_sum": 1.8,
        "last_score": 1.0,
        "baseline": 0.2,
        "p_fast": 0.145,
        "p_slow": 0.0298,
        "p_true": 0.316,
        "lp": 0.145 - 0.0298,
        "reward_ema": 0.208 + 0.02 * (1.0 - 0.208),  # 0.2 -> 0.208 -> 0.22384
        "reward_sq_ema": 0.0464 + 0.02 * (1.0 - 0.0464),  # 0.04 -> 0.0464 -> 0.065472
        "success_ema": 0.02 + 0.02 * (1.0 - 0.02),  # 0 -> 0.02 -> 0.0396 (threshold 0.5)
    }
    for field, value in expected.items():
        assert r[field] == pytest.approx(value, rel=1e-12, abs=1e-15), field
    assert r["task_id"] == tid
    assert r["label_hash"] == bs.label_hash("default")


def test_first_outcome_is_known_by_count_not_by_a_zero_sentinel(shared_lock: Any) -> None:
    with ShmCurriculum(max_tasks=4, lock=shared_lock, random_baseline=0.0) as c:
        [tid] = c.create_tasks(1, seed=4)
        for s in (0.0, 0.0, 0.5):
            c.update(tid, s)
        r = c.row(tid)
    assert r["baseline"] == 0.0
    assert r["p_fast"] == pytest.approx(0.05)  # 0 -> 0 -> 0.1 * 0.5: not re-initialised to 0.5
    assert r["p_slow"] == pytest.approx(0.01)
    assert r["p_true"] == pytest.approx(0.05)


def test_update_clips_rejects_non_finite_and_reports_unknown_tasks(cur: ShmCurriculum) -> None:
    [tid] = cur.create_tasks(1, seed=5)
    assert cur.update(tid, 7.0)
    assert cur.row(tid)["last_score"] == 1.0
    with pytest.raises(ValueError):
        cur.update(tid, float("nan"))
    assert not cur.update(123456789, 0.5)
    assert cur.dropped_updates == 1
    assert cur.completions_total() == 1


# -- the distribution and choose_task --------------------------------------------------------------
def test_lp_distribution_rules() -> None:
    comp = np.array([0.0, 3.0, 12.0, 12.0])
    lp = np.array([0.0, 0.0, 0.3, 0.0])
    p = bs.lp_distribution(comp, lp, np.zeros(4), rand_task_rate=0.0)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(0.25) and p[1] == pytest.approx(0.25)  # young: uniform share each
    assert p[2] + p[3] == pytest.approx(0.5) and p[2] > 0.99 * 0.5  # eligible split by sigmoid(z*10)
    nobody = bs.lp_distribution(np.zeros(3), np.zeros(3), np.zeros(3))
    assert np.allclose(nobody, 1 / 3)
    flat = bs.lp_distribution(np.full(5, 20.0), np.full(5, 0.1), np.zeros(5))  # std 0: no NaN
    assert np.allclose(flat, 0.2)
    assert bs.lp_distribution(np.empty(0), np.empty(0), np.empty(0)).size == 0


@pytest.mark.parametrize("lock_reads", [True, False])
def test_choose_task_returns_active_ids_and_favours_high_lp(shared_lock: Any, lock_reads: bool) -> None:
    with ShmCurriculum(max_tasks=12, lock=shared_lock, lock_reads=lock_reads) as c:
        ids = c.create_tasks(9, seed=6)
        learner, flat, removed = ids[0], ids[1:8], ids[8]
        for s in np.linspace(0.0, 1.0, 12):
            c.update(learner, float(s))  # rising: fast EMA pulls away from the slow one
            for t in flat:
                c.update(t, 0.5)  # constant: p = 0, LP = 0
        assert c.remove(removed)
        active = set(c.active_ids())
        assert active == {learner, *flat}
        rng = np.random.default_rng(7)
        draws = [c.choose_task(rng) for _ in range(1500)]
    assert set(draws) <= active
    counts = {t: draws.count(t) for t in active}
    assert counts[learner] > 0.6 * len(draws)
    assert counts[learner] > 10 * max(counts[t] for t in flat)


def test_distribution_sums_to_one_with_young_and_eligible(cur: ShmCurriculum) -> None:
    ids = cur.create_tasks(6, seed=8)
    rng = np.random.default_rng(8)
    for t in ids[:4]:
        for _ in range(10):
            cur.update(t, float(rng.random()))
    got_ids, probs = cur.distribution()
    assert sorted(got_ids.tolist()) == sorted(ids)
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(np.isfinite(probs)) and np.all(probs > 0)


# -- creation and eviction --------------------------------------------------------------------------
def test_create_tasks_fills_free_slots_and_refuses_overflow(cur: ShmCurriculum) -> None:
    ids = cur.create_tasks(16, seed=9)
    assert len(set(ids)) == 16
    with pytest.raises(ValueError):
        cur.create_tasks(1, seed=10)
    assert cur.remove(ids[0])
    [again] = cur.create_tasks(1, seed=11, label="other")
    r = cur.row(again)
    assert r["completions"] == 0.0 and r["label_hash"] == bs.label_hash("other")


def test_evict_one_replaces_the_lowest_lp_task_in_place(cur: ShmCurriculum) -> None:
    ids = cur.create_tasks(5, seed=12)
    for k, t in enumerate(ids):
        for s in np.linspace(0.0, 0.2 * k, 6):  # task k: rising by 0.2k, so LP grows with k
            cur.update(t, float(s))
    lps = {t: cur.row(t)["lp"] for t in ids}
    assert min(lps, key=lambda t: lps[t]) == ids[0]
    evicted = cur.evict_one(label="fresh")
    assert evicted is not None
    old, new = evicted
    assert old == ids[0]
    active = cur.active_ids()
    assert old not in active and new in active and len(active) == 5
    r = cur.row(new)
    assert r["completions"] == 0.0 and r["lp"] == 0.0 and r["label_hash"] == bs.label_hash("fresh")
    assert not cur.update(old, 0.5)  # a score for an evicted task is dropped, not an error


def test_evict_one_respects_min_presentations(cur: ShmCurriculum) -> None:
    ids = cur.create_tasks(3, seed=13)
    for t in ids:
        for _ in range(4):  # below min_presentations_for_eviction (5)
            cur.update(t, 0.5)
    assert cur.evict_one() is None


def test_another_process_view_rebuilds_its_index(cur: ShmCurriculum) -> None:
    other = pickle.loads(pickle.dumps(cur))
    try:
        [tid] = cur.create_tasks(1, seed=14)  # created after `other` attached: not in its index
        before = other.index_rebuilds
        assert other.update(tid, 0.3)
        assert other.index_rebuilds == before + 1  # the O(max_tasks) slow path
        assert other.update(tid, 0.3)
        assert other.index_rebuilds == before + 1  # then the O(1) fast path
    finally:
        other.close()


# -- shared-memory hygiene --------------------------------------------------------------------------
@needs_dev_shm
def test_no_segment_remains_after_close(shared_lock: Any) -> None:
    with ShmCurriculum(max_tasks=4, lock=shared_lock) as c:
        name = c.name
        assert (DEV_SHM / name).exists()
    assert not (DEV_SHM / name).exists()

    c2 = ShmCurriculum(max_tasks=4, lock=shared_lock)
    name2 = c2.name
    c2.close()
    assert (DEV_SHM / name2).exists()  # close() unmaps; only unlink() removes the name
    c2.unlink()
    assert not (DEV_SHM / name2).exists()

    c3 = ShmCurriculum(max_tasks=4)  # owns its Manager; never closed explicitly
    name3 = c3.name
    del c3
    gc.collect()
    assert not (DEV_SHM / name3).exists()


@needs_dev_shm
def test_measure_helpers_return_documented_keys_and_clean_up() -> None:
    before_segments = our_segments()
    before_children = {p.pid for p in mp.active_children()}

    up = bs.measure_update_throughput(2, 50, n_tasks=16)
    assert set(up) == {"processes", "updates", "seconds", "updates_per_s"}
    assert up["processes"] == 2 and up["updates"] == 100
    assert up["seconds"] > 0 and up["updates_per_s"] > 0

    lat = bs.measure_choose_latency(32, 20)
    assert set(lat) == {"tasks", "draws", "median_s", "p90_s"}
    assert lat["tasks"] == 32 and lat["draws"] == 20
    assert 0 < lat["median_s"] <= lat["p90_s"]

    assert our_segments() <= before_segments
    leftover = {p.pid for p in mp.active_children()} - before_children
    assert not leftover, f"processes left running: {leftover}"
    assert os.getpid() not in leftover
