"""The benchmark scripts run end to end in their smallest mode and write the documented JSON (no timings
are asserted: machines here are shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_script(name: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    )


def test_run_py_smoke_writes_every_figure(tmp_path: Path) -> None:
    result = run_script("run.py", tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert {"mode", "machine", "throughput", "get_task", "floor", "refresh", "seconds"} <= set(data)
    assert data["machine"]["cores"] >= 1 and data["machine"]["redis_version"]
    for row in data["throughput"]:
        assert {"processes", "baseline_updates_per_s", "redis_batch_1_updates_per_s",
                "redis_batch_64_updates_per_s", "redis_batch_256_updates_per_s", "ratio_batch_1", "ratio_batch_64",
                "ratio_batch_256"} <= set(row)
        assert row["redis_batch_64_updates_per_s"] > 0
    for row in data["get_task"]:
        assert {"tasks", "get_task_median_s", "get_task_mean_s", "baseline_choose_median_s", "speedup"} <= set(row)
    assert {"noop_evalsha_s", "record_1_s", "record_64_s", "record_1_over_noop"} <= set(data["floor"])
    for row in data["refresh"]:
        assert {"tasks", "read_snapshot_median_s", "refresh_median_s", "memory_bytes_per_task"} <= set(row)
        assert row["memory_bytes_per_task"] > 0
    assert (tmp_path / "results.png").stat().st_size > 0
    assert "outcome throughput" in result.stdout


def test_large_pool_py_smoke_measures_every_script_and_bounds_the_strings(tmp_path: Path) -> None:
    run_script("large_pool.py", tmp_path)
    (row,) = json.loads((tmp_path / "large_pool.json").read_text())
    assert row["tasks"] > 8192 and row["bytes_per_task"] > 0
    assert row["longest_scores_string"] <= 8192 * 128  # one segment
    assert {"create_tasks", "record_outcomes"} <= set(row["commands"])
    assert row["commands"]["create_tasks"]["calls"] >= row["tasks"] // 64


def test_quality_py_smoke_compares_every_sampler(tmp_path: Path) -> None:
    result = run_script("quality.py", tmp_path)
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["seeds"] >= 2 and data["episodes"] > 0
    assert {"uniform", "lp reference (bidirectional)", "lp noise-corrected (z=1)"} <= set(data["samplers"])
    for row in data["samplers"].values():
        for metric in ("mastered_levels", "mean_final_success", "impossible_share", "mastered_share"):
            assert set(row[metric]) == {"mean", "std"}
            assert 0.0 <= row[metric]["mean"] <= 6.0
    assert "simulated student" in result.stdout
