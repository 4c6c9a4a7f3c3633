"""The demo end to end: worker processes, a private Redis saved to RDB, the default curriculum against
uniform sampling, the report, the plot, and a clean stop on Ctrl-C."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import redis
from rich.console import Console

from curriculum_redis.algorithms import DEFAULT_ALGORITHM
from curriculum_redis.demo import DemoOptions, report, run, run_demo, server
from curriculum_redis.demo.server import EmbeddedRedis
from curriculum_redis.errors import ConfigError
from curriculum_redis.store.redis import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# At this size the default (frontier) masters 6 levels and uniform 2, and impossible tasks get 6-7% of the
# episodes (seeds 3 and 4; uniform: 12%).
EPISODES = 60_000
TASKS = 64


def running_on(data_dir: Path) -> list[EmbeddedRedis]:
    """Embedded servers this process started on ``data_dir`` and has not stopped."""
    return [server for server in server._RUNNING if server.data_dir == data_dir]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    out = tmp_path_factory.mktemp("demo")
    console = Console(file=io.StringIO(), width=200)
    run_demo(DemoOptions(episodes=EPISODES, workers=2, tasks=TASKS, seed=3, out=out, progress=False), console)
    report = json.loads((out / "report.json").read_text())
    assert isinstance(console.file, io.StringIO)
    return report, out, console.file.getvalue()


def test_every_episode_reaches_redis(demo_run: tuple[dict[str, Any], Path, str]) -> None:
    report, _, _ = demo_run
    assert report["episodes"] == report["episodes_recorded"] == EPISODES
    assert report["counters"]["num_completed"] == EPISODES
    assert report["workers"] == 2 and report["tasks"] == TASKS
    assert report["algorithm"] == DEFAULT_ALGORITHM


def test_impossible_tasks_get_a_small_share(demo_run: tuple[dict[str, Any], Path, str]) -> None:
    report, _, _ = demo_run
    assert 0.0 < report["impossible_share"] < 0.1
    assert report["uniform"]["impossible_share"] == pytest.approx(1 / 8, abs=0.02)
    impossible = report["labels"]["student:kind=impossible,level=1"]
    assert impossible["kind"] == "impossible"
    assert impossible["success_rate"] == 0.0
    assert impossible["completions"] > 0


def test_the_default_masters_more_levels_than_uniform(demo_run: tuple[dict[str, Any], Path, str]) -> None:
    report, _, _ = demo_run
    assert report["curriculum"]["mastered_levels"] > report["uniform"]["mastered_levels"]
    assert len(report["curriculum"]["level_success"]) == len(report["uniform"]["level_success"]) == 6


def test_report_has_every_label_and_sums_to_one(demo_run: tuple[dict[str, Any], Path, str]) -> None:
    report, _, _ = demo_run
    assert len(report["labels"]) == 8
    for row in report["labels"].values():
        assert set(row) >= {"sampling_share", "active_score", "success_rate", "completions", "evictions"}
    assert sum(row["sampling_share"] for row in report["labels"].values()) == pytest.approx(1.0)
    series = report["series"]
    assert len(series["episodes"]) >= 1
    for shares in zip(*series["share"].values(), strict=True):
        assert sum(shares) == pytest.approx(1.0)


def test_plot_is_a_readable_png(demo_run: tuple[dict[str, Any], Path, str]) -> None:
    import matplotlib.image

    report, out, _ = demo_run
    assert report["plot"] == str(out / "sampling_share.png")
    image = matplotlib.image.imread(out / "sampling_share.png")
    assert image.shape[0] > 0 and image.shape[1] > 0


def test_server_is_stopped_and_its_rdb_holds_the_namespace(demo_run: tuple[dict[str, Any], Path, str]) -> None:
    report, out, _ = demo_run
    info = report["redis"]
    assert info["embedded"] and info["namespace"] == "demo"
    assert info["data_dir"] == str(out / "redis")
    client = redis.Redis.from_url(info["url"], socket_connect_timeout=1)
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    client.close()
    assert not running_on(Path(info["data_dir"]))

    with EmbeddedRedis(data_dir=info["data_dir"], persistence="none", keep_data=True) as server:
        state = RedisStore.from_url(server.url, "demo").export_state()
    assert state.counters["num_completed"] == report["counters"]["num_completed"]
    assert len(state.tasks) == TASKS


def test_output_shows_tables_and_redis_cli_commands(demo_run: tuple[dict[str, Any], Path, str]) -> None:
    report, out, text = demo_run
    assert "student:kind=impossible,level=1" in text
    assert "uniform" in text and f"{DEFAULT_ALGORITHM} curriculum" in text
    binary = report["redis"]["server_binary"]  # the server that wrote the RDB file (Valkey's is newer)
    assert binary and Path(binary).name in ("redis-server", "valkey-server")
    assert f"{binary} --dir {out / 'redis'}" in text
    assert "HGETALL '{cr:demo}:counters'" in text
    assert "HGETALL '{cr:demo}:task:" in text


def test_ctrl_c_stops_workers_and_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "watch", interrupted)
    options = DemoOptions(episodes=10_000_000, workers=2, tasks=8, out=tmp_path, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_demo(options, Console(file=io.StringIO()))
    assert not multiprocessing.active_children()
    assert not running_on(tmp_path / "redis")
    assert (tmp_path / "redis" / "dump.rdb").exists()


def test_rerun_on_the_same_output_starts_afresh(tmp_path: Path) -> None:
    options = DemoOptions(episodes=3000, workers=1, tasks=8, out=tmp_path, progress=False)
    run_demo(options, Console(file=io.StringIO()))
    second = run_demo(options, Console(file=io.StringIO()))
    assert second.episodes_recorded == 3000


def test_redis_cli_commands_never_show_a_password() -> None:
    info = report.RedisInfo(url="redis://user:***@db.example:6380/2", namespace="exp", embedded=False)
    lines = report.redis_cli_commands(info, "{cr:exp}:task:7")
    assert lines[0] == "redis-cli -h db.example -p 6380 -n 2 --askpass HGETALL '{cr:exp}:meta'"
    assert "redis-cli -h db.example -p 6380 -n 2 --askpass HGETALL '{cr:exp}:task:7'" in lines
    assert not any("***" in line or "redis-server" in line for line in lines)


def test_options_name_a_known_algorithm_and_lp_options_only_with_lp() -> None:
    assert DemoOptions().algorithm == DEFAULT_ALGORITHM
    config = run.demo_config(DemoOptions(algorithm="learning_progress", lp_noise_correction=1.0), None)
    assert config.algorithm.algorithm == "learning_progress" and config.algorithm.lp_noise_correction == 1.0  # type: ignore[union-attr]
    assert run.demo_config(DemoOptions(tasks=32), None).algorithm.num_active_tasks == 32  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="unknown algorithm 'nope'"):
        DemoOptions.build(algorithm="nope")
    with pytest.raises(ConfigError, match="learning_progress only, not to frontier"):
        DemoOptions.build(lp_noise_correction=1.0)
