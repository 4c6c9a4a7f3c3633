"""Statistics on a hand-built snapshot: pool summaries, per-label tables and their flat form."""

from __future__ import annotations

import numpy as np
import pytest

from curriculum_redis.algorithms import get_algorithm
from curriculum_redis.state import LabelStats
from curriculum_redis.stats import flatten_labels, label_table, pool_stats
from curriculum_redis.store.base import ScoreSnapshot

approx = pytest.approx

MAZE, ARENA, GONE = 1001, 2002, 3003
LP_FIELDS = get_algorithm("learning_progress").snapshot_fields()
LP_DTYPE = get_algorithm("learning_progress").dtype()


COLUMNS = ("task_id", "label_hash", "completions", "lp", "p_true", "success_ema", "score_sum",
           "consecutive_failures")


def _records(rows: list[tuple[float, ...]]) -> np.ndarray:
    """Snapshot records with the named columns set (any other stored field stays 0)."""
    records = np.zeros(len(rows), dtype=LP_DTYPE)
    for name, values in zip(COLUMNS, zip(*rows, strict=True), strict=True):
        records[name] = values
    return records


def _snapshot() -> ScoreSnapshot:
    rows = [
        (11, MAZE, 12, 0.0, 0.1, 0.2, 3.0, 0),
        (12, MAZE, 20, 0.2, 0.5, 0.6, 9.0, 0),
        (13, ARENA, 4, 0.0, 0.0, 0.0, 0.0, 2),
        (14, ARENA, 30, 1e-12, 0.9, 1.0, 27.0, 0),
        (15, MAZE, 0, 0.4, 0.0, 0.0, 0.0, 0),
    ]
    return ScoreSnapshot(pool_version=3, records=_records(rows))


PROBS = np.array([0.1, 0.3, 0.05, 0.15, 0.4])


def _label_stats() -> dict[int, LabelStats]:
    return {
        MAZE: LabelStats(label="maze", created=5, evicted=2, active=3, completions=40, score_sum=14.0,
                         successes=10, samples=50, lp_ema=0.12),
        ARENA: LabelStats(label="arena", created=2, evicted=0, active=2, completions=34, score_sum=27.0,
                          successes=30, samples=30, lp_ema=0.01),
        GONE: LabelStats(label="gone", created=1, evicted=1, active=0, completions=8, score_sum=2.0,
                         successes=0, samples=10, lp_ema=0.3),
    }


def test_snapshot_columns_read_from_records() -> None:
    snap = _snapshot()
    assert set(COLUMNS) <= set(LP_FIELDS)
    assert LP_DTYPE.names == LP_FIELDS
    assert snap.size == 5
    assert snap.task_ids.tolist() == [11, 12, 13, 14, 15]
    assert snap.label_hashes.tolist() == [MAZE, MAZE, ARENA, ARENA, MAZE]
    assert snap.column("completions").tolist() == [12, 20, 4, 30, 0]


def test_snapshot_from_bytes_skips_empty_slots_and_partial_records() -> None:
    records = _snapshot().records.copy()
    records[2]["task_id"] = 0  # a freed slot
    blob = records.tobytes() + b"\x00" * 10  # and a torn tail
    snap = ScoreSnapshot.from_bytes(7, blob, LP_DTYPE)
    assert snap.pool_version == 7
    assert snap.task_ids.tolist() == [11, 12, 14, 15]


def test_pool_stats_on_a_hand_built_snapshot() -> None:
    out = pool_stats(_snapshot(), PROBS, capacity=8, score_field="lp")
    assert out["num_active_tasks"] == 5.0
    assert out["pool/occupancy"] == approx(5 / 8)
    # Exactly two LPs are 0.0; 1e-12 is not zero (reference bug 4.1 counted nothing at all).
    assert out["lp/num_zeros"] == 2.0
    assert out["lp/mean"] == approx((0.0 + 0.2 + 0.0 + 1e-12 + 0.4) / 5)
    assert out["lp/max"] == approx(0.4)
    # Sorted LP [0, 0, 1e-12, 0.2, 0.4]: median 1e-12; p10 at position 0.4 -> 0; p90 at 3.6 -> 0.2 + 0.6*0.2.
    assert out["lp/p50"] == approx(1e-12, abs=1e-15)
    assert out["lp/p10"] == approx(0.0, abs=1e-15)
    assert out["lp/p90"] == approx(0.32)
    assert out["probability/mean"] == approx(0.2)
    assert out["probability/max"] == approx(0.4)
    assert out["probability/min"] == approx(0.05)
    assert out["pool/mean_completions"] == approx(66 / 5)
    assert out["pool/mean_success"] == approx(1.8 / 5)
    # gini of sorted probs [.05, .1, .15, .3, .4]: 2*(.05+.2+.45+1.2+2)/(5*1) - 6/5 = 0.36
    assert out["gini/sampling_probability"] == approx(0.36)
    # gini of sorted LP [0, 0, ~0, .2, .4]: 2*(0.8 + 2.0)/(5*0.6) - 1.2 = 0.6666...
    assert out["gini/lp"] == approx(2 * (4 * 0.2 + 5 * 0.4) / (5 * 0.6) - 1.2, abs=1e-9)


def test_lp_num_zeros_counts_only_exact_zeros() -> None:
    records = np.zeros(4, dtype=LP_DTYPE)
    records["task_id"] = [1, 2, 3, 4]
    records["lp"] = [0.0, -0.0, 5e-324, 0.5]
    out = pool_stats(ScoreSnapshot(0, records), np.full(4, 0.25), capacity=4, score_field="lp")
    assert out["lp/num_zeros"] == 2.0
    records["lp"] = [0.0, 0.0, 0.0, 0.0]
    assert pool_stats(ScoreSnapshot(0, records), np.full(4, 0.25), capacity=4, score_field="lp")["lp/num_zeros"] == 4.0


def test_pool_stats_of_an_empty_pool() -> None:
    out = pool_stats(ScoreSnapshot(0, np.zeros(0, dtype=LP_DTYPE)), np.zeros(0), capacity=16, score_field="lp")
    assert out["num_active_tasks"] == 0.0
    assert out["pool/occupancy"] == 0.0
    assert out["lp/num_zeros"] == 0.0
    assert out["gini/sampling_probability"] == 0.0
    assert "lp/mean" not in out
    assert all(np.isfinite(v) for v in out.values())


def test_label_table_per_label_values_are_hand_computed() -> None:
    table = label_table(_snapshot(), PROBS, _label_stats(), "lp")
    assert list(table) == ["arena", "gone", "maze"]  # sorted by label string
    maze = table["maze"]
    assert maze["active"] == 3.0
    assert maze["pool_share"] == approx(3 / 5)
    assert maze["sampling_probability"] == approx(0.1 + 0.3 + 0.4)
    assert maze["active_score"] == approx((0.0 + 0.2 + 0.4) / 3)
    assert maze["mean_score"] == approx(14.0 / 40)
    assert maze["success_rate"] == approx(10 / 40)
    assert maze["score_ema"] == 0.12
    assert (maze["created"], maze["evictions"], maze["completions"], maze["samples"]) == (5.0, 2.0, 40.0, 50.0)
    arena = table["arena"]
    assert arena["active"] == 2.0
    assert arena["pool_share"] == approx(2 / 5)
    assert arena["sampling_probability"] == approx(0.05 + 0.15)
    assert arena["active_score"] == approx(5e-13)
    assert arena["mean_score"] == approx(27 / 34)
    assert arena["success_rate"] == approx(30 / 34)


def test_label_without_active_tasks_keeps_its_history_and_zero_shares() -> None:
    gone = label_table(_snapshot(), PROBS, _label_stats(), "lp")["gone"]
    assert gone["active"] == 0.0
    assert gone["pool_share"] == 0.0
    assert gone["sampling_probability"] == 0.0
    assert gone["active_score"] == 0.0
    assert gone["mean_score"] == approx(0.25)
    assert gone["success_rate"] == 0.0
    assert gone["evictions"] == 1.0


def test_label_with_no_completions_has_zero_rates_not_nan() -> None:
    stats = {MAZE: LabelStats(label="maze", created=3, active=3)}
    row = label_table(_snapshot(), PROBS, stats, "lp")["maze"]
    assert row["mean_score"] == 0.0
    assert row["success_rate"] == 0.0


def test_label_without_a_string_is_named_by_its_hash() -> None:
    table = label_table(_snapshot(), PROBS, {ARENA: LabelStats(label="")}, "lp")
    assert list(table) == [str(ARENA)]


def test_label_shares_sum_to_one_when_every_active_label_is_known() -> None:
    table = label_table(_snapshot(), PROBS, _label_stats(), "lp")
    assert sum(row["pool_share"] for row in table.values()) == approx(1.0)
    assert sum(row["sampling_probability"] for row in table.values()) == approx(1.0)


def test_flatten_labels_names_every_cell_and_adds_sample_gini() -> None:
    table = label_table(_snapshot(), PROBS, _label_stats(), "lp")
    flat = flatten_labels(table)
    assert flat["label/maze/score_ema"] == 0.12
    assert flat["label/arena/sampling_probability"] == approx(0.2)
    assert flat["label/gone/evictions"] == 1.0
    assert len(flat) == 3 * len(table["maze"]) + 1
    # samples [50, 30, 10] -> sorted [10, 30, 50]: 2*(10 + 60 + 150)/(3*90) - 4/3 = 0.2666...
    assert flat["gini/label_samples"] == approx(2 * 220 / 270 - 4 / 3)
    assert all(isinstance(v, float) for v in flat.values())


def test_flatten_labels_of_an_empty_table() -> None:
    assert flatten_labels({}) == {"gini/label_samples": 0.0}
