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

from curriculum_redis.demo.binaries import EmbeddedRedisError, describe_server, find_redis_server
from curriculum_redis.demo.server import EmbeddedRedis

# --------------------------------------------------------------------------- Redis

#: Fixtures that start or use a real server: a test using any of them is marked ``redis``, so
#: ``pytest -m redis`` runs exactly the server-backed tests (.ci/run repeats them on every server binary).
SERVER_FIXTURES = frozenset({"redis_server", "redis_url", "redis_client", "fresh_redis_factory", "redis_cluster",
                             "cluster_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


def pytest_report_header() -> str:
    try:
        return f"redis server binary: {describe_server(find_redis_server())}"
    except EmbeddedRedisError as exc:
        return f"redis server binary: none ({exc})"



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


# --------------------------------------------------------------------------- Redis Cluster (issue 7)
# A real local cluster (3 primaries, 1 replica each) started once per session; see tests/cluster.py.
#   redis_cluster   session-scoped cluster.LocalCluster
#   cluster_url     its URL (redis://127.0.0.1:<port>/0?cluster=true), after FLUSHALL on every primary
# Tests using it are marked ``cluster`` (select them with ``-m cluster``).

from cluster import LocalCluster  # noqa: E402  (kept in this section: the sections above are others')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: Redis Cluster and replica tests (tests/cluster.py starts the cluster)")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"), masters=3, replicas=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster) -> str:
    redis_cluster.flush()
    return redis_cluster.url
