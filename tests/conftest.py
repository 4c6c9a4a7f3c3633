"""Shared pytest fixtures. Helper code lives in tests/redis_servers.py; add new fixtures in their own section.

Redis fixtures:
    redis_server          session-scoped EmbeddedRedis (persistence="none") on a free loopback port
    redis_url             its URL, after FLUSHALL, so each test starts with an empty server
    redis_client          a redis.Redis (bytes responses) on that empty server, closed after the test
    fresh_redis_factory   factory(**EmbeddedRedis kwargs) -> a started extra server, stopped after the test
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_servers import ServerFactory, flush_server, start_session_server

from curriculum_redis.embedded import EmbeddedRedis

# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One private redis-server for the whole session (never the machine's 6379 server)."""
    server = start_session_server(tmp_path_factory.mktemp("redis-session"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of the session server, emptied with FLUSHALL before the test."""
    flush_server(redis_server)
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client with decode_responses=False on the emptied session server."""
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fresh_redis_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start extra servers, e.g. ``fresh_redis_factory(persistence="aof")``, for crash/restart tests."""
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
