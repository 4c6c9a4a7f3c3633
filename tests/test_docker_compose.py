"""docker-compose.yml: a persistent Redis for a run, and the demo against it (no Docker engine here)."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_compose_file_parses_and_runs_redis_with_rdb_and_aof_on_a_volume() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    settings = dict(zip(command[1::2], command[2::2], strict=True))
    assert settings["--appendonly"] == "yes" and settings["--appendfsync"] == "everysec"
    assert settings["--dir"] == "/data"
    assert any(v == "300 1" for k, v in zip(command[1::2], command[2::2], strict=True) if k == "--save")
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in compose["volumes"]


def test_compose_demo_service_points_at_the_redis_service() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    demo = compose["services"]["demo"]
    assert "curriculum-redis demo --redis-url redis://redis:6379/0" in demo["command"][-1]
    assert demo["depends_on"]["redis"]["condition"] == "service_healthy"
