"""Every script in examples/ runs, in its short mode; the docker-compose example is checked without Docker
(its file parses, and the worker's environment reaches the script's options)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from curriculum_redis.history import read_history

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = sorted(p.name for p in (EXAMPLES / "configs").glob("*.yaml"))


def test_every_example_script_has_a_test_here() -> None:
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts == {"frozenlake_vector", "train_from_config"}


@pytest.mark.slow
@pytest.mark.redis
def test_frozenlake_vector_runs_processes_on_one_redis_and_plots_the_history(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples import frozenlake_vector

    png = tmp_path / "lake.png"
    assert frozenlake_vector.main(["--short", "--redis-url", redis_url, "--namespace", "lake", "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    # 2 workers x 300 episodes; a worker's last step may end several of its 4 sub-envs at once
    match = re.search(r"([\d,]+) episodes, ", out)
    assert match and 600 <= int(match.group(1).replace(",", "")) <= 606, out
    client = redis.Redis.from_url(redis_url)
    history = read_history(client, "lake")
    client.close()
    assert len(history) >= 6 and all(name.startswith("lake:dist=") for name in history.share())


def test_frozenlake_tasks_are_the_lake_s_frozen_cells_labelled_by_distance() -> None:
    from examples import frozenlake_vector

    config = frozenlake_vector.make_config("redis://unused:1/0", "x")
    generator = config.task_generator
    assert generator is not None
    starts = frozenlake_vector.starts()
    assert len(starts) == 64 - 10 - 1  # 10 holes, the goal
    task = generator.get_task(1)
    assert task.label == f"lake:dist={task.env_cfg['start']['dist']:02d}"


@pytest.mark.redis
@pytest.mark.parametrize("config", CONFIGS)
def test_train_from_config_runs_every_algorithm_s_config_on_redis_with_a_logger(
    config: str, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples import train_from_config

    argv = [str(EXAMPLES / "configs" / config), "--redis-url", redis_url, "--namespace", f"ex-{config[:-5]}"]
    assert train_from_config.main([*argv, "--episodes", "400", "--vector", "8", "--log-every", "100"]) == 0
    out = capsys.readouterr().out
    assert "400 episodes played here" in out


@pytest.mark.redis
def test_train_from_config_writes_tensorboard_events(redis_url: str, tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    from examples import train_from_config

    logdir = tmp_path / "tb"
    argv = [str(EXAMPLES / "configs" / "learning_progress.json"), "--redis-url", redis_url, "--namespace", "ex-tb"]
    assert train_from_config.main([*argv, "--episodes", "300", "--tensorboard", str(logdir)]) == 0
    assert list(logdir.glob("events.out.tfevents.*"))


def test_train_from_config_runs_without_redis(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import train_from_config

    assert (
        train_from_config.main([str(EXAMPLES / "configs" / "uniform.yaml"), "--redis-url", "", "--episodes", "50"]) == 0
    )
    assert "50 episodes played here" in capsys.readouterr().out


def compose_environment() -> dict[str, str]:
    """The worker's environment as docker compose resolves it with nothing set on the host."""
    compose = yaml.safe_load((EXAMPLES / "docker-compose.yml").read_text())
    env: dict[str, Any] = compose["services"]["worker"]["environment"]
    default = re.compile(r"\$\{(\w+):-([^}]*)\}")
    return {name: default.sub(lambda m: m.group(2), str(value)) for name, value in env.items()}


def test_compose_example_runs_redis_with_persistence_and_a_worker_that_can_run_elsewhere() -> None:
    compose = yaml.safe_load((EXAMPLES / "docker-compose.yml").read_text())
    redis_service, worker = compose["services"]["redis"], compose["services"]["worker"]
    assert "--appendonly" in redis_service["command"] and "redis-data:/data" in redis_service["volumes"]
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy", "required": False}
    assert "examples/frozenlake_vector.py" in worker["command"][-1]
    assert compose_environment()["CURRICULUM_REDIS_URL"] == "redis://redis:6379/0"


def test_compose_worker_environment_becomes_the_example_s_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from examples import frozenlake_vector

    for name, value in compose_environment().items():
        monkeypatch.setenv(name, value)
    args = frozenlake_vector.parse([])
    assert (args.redis_url, args.namespace) == ("redis://redis:6379/0", "frozenlake")
    assert (args.workers, args.envs, args.episodes, args.history_every) == (4, 8, 5000, 500)
    monkeypatch.setenv("CURRICULUM_REDIS_URL", "redis://machine-a:6379/0")  # machine B
    assert frozenlake_vector.parse([]).redis_url == "redis://machine-a:6379/0"
