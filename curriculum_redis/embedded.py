"""Moved to :mod:`curriculum_redis.demo.server` and :mod:`curriculum_redis.demo.binaries`; this alias serves
the importers not yet switched (deleted at integration)."""

from curriculum_redis.demo.binaries import (
    INSTALL_HINT,
    EmbeddedRedisError,
    describe_server,
    find_redis_cli,
    find_redis_server,
    free_port,
    server_version,
)
from curriculum_redis.demo.server import RDB_SAVE_POINTS, EmbeddedRedis, Persistence, stop_all_servers

__all__ = [
    "INSTALL_HINT",
    "RDB_SAVE_POINTS",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "Persistence",
    "describe_server",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "server_version",
    "stop_all_servers",
]
