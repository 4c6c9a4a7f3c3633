"""The demo names the server it runs on: binary, version (Valkey's own, not its compatibility
redis_version) and pid for its own server; name and version for a given one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curriculum_redis.demo import report as demo
from curriculum_redis.demo.server import EmbeddedRedis

pytestmark = pytest.mark.redis


class FakeClient:
    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info

    def info(self, section: str) -> dict[str, Any]:
        assert section == "server"
        return self._info

    def close(self) -> None:
        pass


def test_valkey_reports_its_own_name_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {
        "redis_version": "7.2.4",
        "server_name": "valkey",
        "valkey_version": "9.1.2",
        "executable": "/opt/venv/bin/valkey-server",
    }
    monkeypatch.setattr(demo, "client_from_url", lambda url: FakeClient(info))
    assert demo.server_version("redis://127.0.0.1:7000/0") == ("valkey", "9.1.2", "/opt/venv/bin/valkey-server")
    assert demo.describe_server("redis://u:pw@db:7000/0", None) == "using valkey 9.1.2 at redis://u:***@db:7000/0"


def test_redis_reports_redis_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "client_from_url", lambda url: FakeClient({"redis_version": "7.0.15"}))
    assert demo.server_version("redis://db:6379/0") == ("redis", "7.0.15", None)


def test_own_server_line_names_binary_version_pid_and_address(tmp_path: Path) -> None:
    with EmbeddedRedis(data_dir=tmp_path) as server:
        name, version, executable = demo.server_version(server.url)
        line = demo.describe_server(server.url, server)
        pid, port = server.pid, server.port
    assert executable is not None and Path(executable).is_file()
    assert line == f"started {Path(executable).name} {version} ({executable}, pid {pid}) on 127.0.0.1:{port}"
    assert name in ("redis", "valkey") and version[0].isdigit()
