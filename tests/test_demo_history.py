"""The demo's picture comes from the run's history in Redis: a short run gets a full curve, by episodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from curriculum_redis.demo import DemoOptions, run_demo
from curriculum_redis.demo.progress import HISTORY_POINTS

pytestmark = pytest.mark.redis


@pytest.mark.slow
def test_a_short_demo_has_a_curve_of_history_points(tmp_path: Path) -> None:
    episodes = 6000
    options = DemoOptions(episodes=episodes, workers=2, tasks=16, seed=1, out=tmp_path, progress=False)
    run_demo(options, Console(file=open(tmp_path / "log.txt", "w"), width=100))  # noqa: SIM115
    report = json.loads((tmp_path / "report.json").read_text())
    series = report["series"]
    every = episodes // HISTORY_POINTS
    # One entry per batch that crosses a multiple: with 30-episode intervals and the workers' batches
    # of 64, about one point per batch (a wall-clock poll gave two points on this run).
    assert len(series["episodes"]) >= 50
    assert series["episodes"] == sorted(series["episodes"]) and series["episodes"][-1] >= episodes - every
    assert all(b // every > a // every for a, b in zip(series["episodes"], series["episodes"][1:], strict=False))
    for column in zip(*series["share"].values(), strict=True):
        assert sum(column) == pytest.approx(1.0)
    assert (tmp_path / "sampling_share.png").read_bytes()[:4] == b"\x89PNG"
