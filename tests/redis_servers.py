"""Helpers behind the Redis fixtures in conftest.py, kept here so conftest stays a short list of fixtures.

Every test talks to private redis-server processes started by this test session on free loopback ports,
never to a server on 6379 that someone else may be using. A missing binary is a failure, not a skip:
find_redis_server() explains how to install one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from curriculum_redis.demo.server import EmbeddedRedis, EmbeddedRedisError


def start_session_server(data_dir: Path) -> EmbeddedRedis:
    """One throwaway server for the whole session; nothing is persisted since every test flushes it."""
    return EmbeddedRedis(data_dir=data_dir, persistence="none").start()


def flush_server(server: EmbeddedRedis) -> None:
    """Empty every logical DB so a test never sees keys left by another."""
    if not server.is_running():
        raise EmbeddedRedisError(
            f"the session redis-server {server!r} is no longer running (did a test stop or kill it?); "
            f"see {server.log_path}"
        )
    client = redis.Redis.from_url(server.url)
    try:
        client.flushall()
    finally:
        client.close()


class ServerFactory:
    """Starts extra servers for one test (crash/restart/persistence tests) and stops them all afterwards."""

    def __init__(self, base_dir: Path) -> None:
        self._base_dir = base_dir
        self.servers: list[EmbeddedRedis] = []

    def __call__(self, **kwargs: Any) -> EmbeddedRedis:
        """Start an EmbeddedRedis with these constructor kwargs; it gets a data dir under the test's tmp_path.

        The data dir is left in place after the test (pytest rotates tmp_path), so a failing test's
        redis.log can still be read.
        """
        if "data_dir" not in kwargs:
            kwargs["data_dir"] = self._base_dir / f"redis-{len(self.servers)}"
        server = EmbeddedRedis(**kwargs)
        # Registered before start() so a server that half-started is still cleaned up.
        self.servers.append(server)
        return server.start()

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:
                errors.append(exc)
        self.servers.clear()
        if errors:
            raise errors[0]
