"""Curriculum statistics as one flat ``dict[str, float]``, ready for wandb or tensorboard.

Pure functions of what the store holds (a snapshot, label aggregates, counters) and of the sampling
distribution, so every process computes the same numbers for the same state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from curriculum_redis.state import LabelStats
from curriculum_redis.store.base import ScoreSnapshot


def gini(values: npt.NDArray[np.float64]) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, towards 1 when one holds everything."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = float(x.sum())
    if n == 0 or total <= 0.0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2.0 * np.dot(ranks, x)) / (n * total) - (n + 1.0) / n)


def pool_stats(
    snapshot: ScoreSnapshot, probs: npt.NDArray[np.float64], capacity: int, score_field: str
) -> dict[str, float]:
    """Pool statistics; the ``<score_field>/...`` keys describe the algorithm's headline score (``lp/...``
    for learning progress)."""
    score = snapshot.column(score_field)
    n = snapshot.size
    f = score_field
    out: dict[str, float] = {
        "num_active_tasks": float(n),
        "pool/occupancy": n / capacity if capacity else 0.0,
        f"{f}/num_zeros": float(np.count_nonzero(score == 0.0)),
        "gini/sampling_probability": gini(probs),
        f"gini/{f}": gini(score),
    }
    if n:
        out.update(
            {
                f"{f}/mean": float(score.mean()),
                f"{f}/max": float(score.max()),
                f"{f}/p10": float(np.quantile(score, 0.1)),
                f"{f}/p50": float(np.quantile(score, 0.5)),
                f"{f}/p90": float(np.quantile(score, 0.9)),
                "probability/mean": float(probs.mean()),
                "probability/max": float(probs.max()),
                "probability/min": float(probs.min()),
                "pool/mean_completions": float(snapshot.column("completions").mean()),
            }
        )
        names = snapshot.records.dtype.names or ()
        if "success_ema" in names:
            out["pool/mean_success"] = float(snapshot.column("success_ema").mean())
    return out


def label_table(
    snapshot: ScoreSnapshot,
    probs: npt.NDArray[np.float64],
    label_stats: Mapping[int, LabelStats],
    score_field: str,
) -> dict[str, dict[str, float]]:
    """Per label: counts, pool share, sampling share, the algorithm's headline score (``score_field``:
    ``active_score``, its mean over the label's active tasks now, and ``score_ema``, its EMA over the
    label's outcomes), ``mean_score`` (of the reported outcomes) and the success rate."""
    hashes = snapshot.label_hashes
    score = snapshot.column(score_field)
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
            "active_score": float(score[mine].mean()) if count else 0.0,
            "score_ema": agg.lp_ema,
            "mean_score": agg.score_sum / agg.completions if agg.completions else 0.0,
            "success_rate": agg.successes / agg.completions if agg.completions else 0.0,
        }
    return table


def flatten_labels(table: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    out = {f"label/{label}/{name}": value for label, row in table.items() for name, value in row.items()}
    samples = np.array([row["samples"] for row in table.values()], dtype=np.float64)
    out["gini/label_samples"] = gini(samples)
    return out
