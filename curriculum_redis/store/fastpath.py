"""EVALSHA over one dedicated connection, for the hot write path.

redis-py's client-level call (pool checkout and release, retry wrapper, observability hooks) costs about
30 µs of CPU per command on the 2-core machines measured here, more than the script itself. The batch
writer sends its script straight on a connection it keeps, and does itself the two things the client
would: load the script again after NOSCRIPT, and retry a command whose connection broke (harmless: the
script ignores a batch it has already applied).
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.exceptions


class ScriptRunner:
    """Runs one script over a connection of its own, taken from ``pool``."""

    def __init__(self, pool: redis.ConnectionPool, source: str, retries: int = 3) -> None:
        self._pool = pool
        self._source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._retries = retries
        self._conn: Any = None  # a redis.connection.AbstractConnection (its methods are untyped)
        self._pid = os.getpid()

    def _connection(self) -> Any:
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._pool.make_connection()
            self._pid = os.getpid()
        return self._conn

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        for attempt in range(self._retries + 1):
            conn = self._connection()
            try:
                return self._evalsha(conn, keys, args)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self.close()
                if attempt == self._retries:
                    raise
                time.sleep(min(0.25, 0.01 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _evalsha(self, conn: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        conn.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return conn.read_response()
        except redis.exceptions.NoScriptError:
            # Script cache flushed (restart, failover, SCRIPT FLUSH): load it and send again.
            conn.send_command("SCRIPT", "LOAD", self._source)
            conn.read_response()
            conn.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
            return conn.read_response()

    def close(self) -> None:
        if self._conn is not None:
            if self._pid == os.getpid():
                self._conn.disconnect()
            self._conn = None
