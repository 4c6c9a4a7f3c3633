"""Curriculum statistics as one flat ``dict[str, float]``, ready for wandb or tensorboard.

Pure functions of what the store holds (a snapshot, label aggregates, counters) and of the sampling
distribution, so every process computes the same numbers for the same state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from curriculum_redis.scoring import gini
from curriculum_redis.state import LabelStats
from curriculum_redis.store.base import ScoreSnapshot


def pool_stats(snapshot: ScoreSnapshot, probs: npt.NDArray[np.float64], capacity: int) -> dict[str, float]:
    lp = snapshot.column("lp")
    n = snapshot.size
    out: dict[str, float] = {
        "num_active_tasks": float(n),
        "pool/occupancy": n / capacity if capacity else 0.0,
        "lp/num_zeros": float(np.count_nonzero(lp == 0.0)),
        "gini/sampling_probability": gini(probs),
        "gini/lp": gini(lp),
    }
    if n:
        out.update(
            {
                "lp/mean": float(lp.mean()),
                "lp/max": float(lp.max()),
                "lp/p10": float(np.quantile(lp, 0.1)),
                "lp/p50": float(np.quantile(lp, 0.5)),
                "lp/p90": float(np.quantile(lp, 0.9)),
                "probability/mean": float(probs.mean()),
                "probability/max": float(probs.max()),
                "probability/min": float(probs.min()),
                "pool/mean_completions": float(snapshot.column("completions").mean()),
                "pool/mean_success": float(snapshot.column("success_ema").mean()),
            }
        )
    return out


def label_table(
    snapshot: ScoreSnapshot,
    probs: npt.NDArray[np.float64],
    label_stats: Mapping[int, LabelStats],
) -> dict[str, dict[str, float]]:
    """Per label: counts, pool share, sampling share, LP (mean now, and EMA) and mean score."""
    hashes = snapshot.label_hashes
    lp = snapshot.column("lp")
    n = max(snapshot.size, 1)
    table: dict[str, dict[str, float]] = {}
    for h, agg in sorted(label_stats.items(), key=lambda item: item[1].label):
        mine = hashes == h
        count = int(mine.sum())
        table[agg.label or str(h)] = {
            "created": float(agg.created),
            "evictions": float(agg.evicted),
            "completions": float(agg.completions),
            "samples": float(agg.samples),
            "active": float(count),
            "pool_share": count / n,
            "sampling_probability": float(probs[mine].sum()) if count else 0.0,
            "mean_lp": float(lp[mine].mean()) if count else 0.0,
            "lp_ema": agg.lp_ema,
            "mean_score": agg.score_sum / agg.completions if agg.completions else 0.0,
            "success_rate": agg.successes / agg.completions if agg.completions else 0.0,
        }
    return table


def flatten_labels(table: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    out = {f"label/{label}/{name}": value for label, row in table.items() for name, value in row.items()}
    samples = np.array([row["samples"] for row in table.values()], dtype=np.float64)
    out["gini/label_samples"] = gini(samples)
    return out
