"""``watch --once`` and ``plot`` on a namespace written by 4 processes; the loggers (the plain callback,
tensorboardX's real writer, a stand-in W&B run); ``Curriculum.sample(k)``."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import redis

from curriculum_redis import BucketedTaskGenerator, Curriculum, CurriculumConfig, LearningProgressConfig
from curriculum_redis.cli import URL_ENV, main
from curriculum_redis.config import BufferConfig
from curriculum_redis.errors import ConfigError
from curriculum_redis.history import read_history, set_interval
from curriculum_redis.loggers import StatsLogger, log_stats, tensorboard_sink, wandb_sink
from curriculum_redis.watch import read_frame, render, sparkline
from tests.workers import report_outcomes

pytestmark = pytest.mark.redis

GENERATOR = BucketedTaskGenerator({}, {"level": list(range(12)), "size": [8, 16]}, label="maze")
SPAWN = multiprocessing.get_context("spawn")


def make_config(url: str | None, namespace: str) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(num_active_tasks=16, min_presentations_for_eviction=3),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=16),
    )


def play(curriculum: Curriculum, n: int) -> None:
    for i in range(n):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, (i % 11) / 11)
    curriculum.flush()


def start(url: str, namespace: str, every: int) -> None:
    with Curriculum(make_config(url, namespace)) as curriculum:
        curriculum.get_task()
    client = redis.Redis.from_url(url)
    set_interval(client, namespace, every)
    client.close()


@pytest.fixture(scope="module")
def four_processes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Namespace ``watched`` on a server of its own, after 4 processes played 1,500 episodes each."""
    from tests.redis_servers import ServerFactory

    factory = ServerFactory(tmp_path_factory.mktemp("watch"))
    server = factory()
    start(server.url, "watched", 100)
    payload = make_config(server.url, "watched").model_dump_json()
    with SPAWN.Pool(4) as pool:
        pool.starmap(report_outcomes, [(payload, 1500, seed) for seed in range(4)])
    yield server.url
    factory.stop_all()


@pytest.mark.slow
def test_watch_once_shows_the_run_s_history_in_80_columns(
    four_processes: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["--redis-url", four_processes, "--namespace", "watched", "watch", "--once"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    assert "episodes 6,000" in out and "history: 60 pts" not in out  # the frame reads the last points only
    assert "every 100 ep" in out and "maze:level=" in out
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█")


@pytest.mark.slow
def test_plot_writes_a_png_of_the_history(four_processes: str, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "run.png"
    assert main(["--redis-url", four_processes, "--namespace", "watched", "plot", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out
    client = redis.Redis.from_url(four_processes)
    history = read_history(client, "watched")
    client.close()
    assert [p.episode // 100 for p in history.points] == list(range(1, 61))


def test_watch_and_plot_refuse_a_missing_namespace_and_a_short_history(
    redis_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    assert main(["--redis-url", redis_url, "--namespace", "none", "watch", "--once"]) == 1
    assert "does not exist" in capsys.readouterr().err
    start(redis_url, "short", 1000)
    assert main(["--redis-url", redis_url, "--namespace", "short", "plot", "--out", str(tmp_path / "x.png")]) == 1
    assert "needs 2" in capsys.readouterr().err
    assert main(["--redis-url", redis_url, "--namespace", "short", "watch", "--once"]) == 0
    assert "no history yet" in capsys.readouterr().out


def test_sparkline_scales_and_leaves_gaps() -> None:
    assert sparkline([0.0, 0.5, 1.0, None]) == "▁▅█ "
    assert sparkline([2.0], high=1.0) == "█"


def test_frame_rate_comes_from_two_reads(redis_url: str) -> None:
    start(redis_url, "rate", 50)
    client = redis.Redis.from_url(redis_url)
    first = read_frame(client, "rate")
    with Curriculum(make_config(redis_url, "rate")) as curriculum:
        play(curriculum, 200)
    second = read_frame(client, "rate", first, seconds=2.0)
    assert second.rate == pytest.approx(100.0)
    render(second)
    client.close()


def test_logger_calls_the_sink_once_per_crossing_with_the_clock_as_step(redis_url: str) -> None:
    start(redis_url, "logged", 1000)
    calls: list[tuple[dict[str, float], int]] = []
    client = redis.Redis.from_url(redis_url)
    logger = StatsLogger(client, "logged", lambda stats, step: calls.append((stats, step)), every_episodes=100)
    with Curriculum(make_config(redis_url, "logged")) as curriculum:
        for _ in range(5):
            play(curriculum, 64)
            logger.poll()
    logger.stop()
    steps = [step for _, step in calls]
    assert steps == [128, 256, 320]  # polled at 64..320: crossings of 100 and 200 (300 is at 320: one log)
    assert all(stats["num_completed"] == step for stats, step in calls)


def test_log_stats_runs_in_a_thread_and_writes_tensorboard_events(redis_url: str, tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    start(redis_url, "tb", 1000)
    with Curriculum(make_config(redis_url, "tb")) as curriculum:
        logger = log_stats(curriculum, tensorboard_sink(str(tmp_path / "tb")), every_episodes=50, poll_s=0.01)
        play(curriculum, 300)
        logger.stop()
    assert logger.logged >= 1
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100
    from tensorboardX.event_file_writer import EventFileWriter  # noqa: F401  (the real writer wrote it)


def test_wandb_sink_logs_with_the_step_and_a_prefix() -> None:
    class Run:
        def __init__(self) -> None:
            self.logged: list[tuple[dict[str, Any], int | None]] = []

        def log(self, data: dict[str, Any], step: int | None = None) -> None:
            self.logged.append((data, step))

    run = Run()
    wandb_sink(run)({"num_completed": 5.0}, 5)
    assert run.logged == [({"curriculum/num_completed": 5.0}, 5)]


def test_log_stats_needs_redis_and_sane_rates(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        log_stats(Curriculum(make_config(None, "mem")), lambda s, t: None)
    with pytest.raises(ConfigError):
        StatsLogger(redis.Redis.from_url(redis_url), "x", lambda s, t: None, every_episodes=0)


def test_sample_k_draws_k_tasks_as_get_task_does(redis_url: str) -> None:
    with Curriculum(make_config(redis_url, "vec")) as curriculum:
        tasks = curriculum.sample(40)
        assert len(tasks) == 40 and all(t.task_id in curriculum.probabilities() for t in tasks)
        for task in tasks:
            curriculum.update_task_performance(task.task_id, 0.5)
        curriculum.flush()
        assert curriculum.stats()["num_scheduled"] == 40
        for bad in (0, -1, 2.0, True):
            with pytest.raises(ConfigError):
                curriculum.sample(bad)  # type: ignore[arg-type]
    with Curriculum(make_config(None, "mem")) as memory:
        assert len(memory.sample(3)) == 3
