"""Snapshot and stats reads from a replica, falling back to the primary.

Replica reads are asynchronous copies: a snapshot read there may lag the primary, by whole script calls
(a replica applies each script's writes atomically); its ``pool_version`` tells which pool it shows. A
replica that is unreachable, or has not yet seen the namespace, is skipped for the primary.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import redis
import redis.exceptions
from redis.cluster import REPLICA, RedisCluster
from redis.crc import key_slot

from curriculum_redis.store.chunks import SNAPSHOT_FIRST_BYTES, read_pool
from curriculum_redis.store.connection import (
    CLUSTER_ONLY_KWARGS,
    Client,
    default_client_kwargs,
    readonly_on_connect,
)
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import RECORD_SIZE
from curriculum_redis.store.url import parse_store_url

log = logging.getLogger(__name__)

REPLICA_RETRY_S = 5.0
"""After a replica read fails (replica down, failed over, no longer serving the slot), reads go to the
primary for this long before a replica is tried again."""

REPLICA_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ResponseError)
"""What a replica read may fail with when the replica is down, failed over, or no longer serves the slot
(MOVED): the read goes to the primary instead."""

RawSnapshot = tuple[int, bytes, Any, Any]
"""pool_version, the scores blob, the algorithm's name and the episode clock, as read."""


class ReplicaReads:
    """The replica one store reads from, connected on first use and dropped for a while when it fails.

    ``replica_url`` names a standalone primary's replica; without it, the replica is one of a cluster's,
    serving the namespace's slot. ``url_kwargs`` are the store's own client kwargs for a replica URL.
    """

    def __init__(self, keys: NamespaceKeys, replica_url: str | None, url_kwargs: dict[str, Any]) -> None:
        self._keys = keys
        self._replica_url = replica_url
        self._url_kwargs = url_kwargs
        self._reader: redis.Redis | None = None
        self._retry_at = 0.0

    def reader(self, primary: Client) -> redis.Redis | None:
        """A client of a replica for the read-only snapshot and statistics; None means read the primary."""
        if self._reader is None and time.monotonic() >= self._retry_at:
            try:
                self._reader = self._connect(primary)
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                self.drop(exc)
            if self._reader is None:
                self._retry_at = time.monotonic() + REPLICA_RETRY_S
        return self._reader

    def _connect(self, primary: Client) -> redis.Redis | None:
        if isinstance(primary, RedisCluster):
            replicas = [
                node
                for node in primary.nodes_manager.slots_cache.get(key_slot(self._keys.meta.encode()), [])
                if node.server_type == REPLICA
            ]
            if not replicas:
                return None
            node = random.choice(replicas)
            kwargs = {k: v for k, v in primary.nodes_manager.connection_kwargs.items() if k not in CLUSTER_ONLY_KWARGS}
            kwargs = {**default_client_kwargs(), **kwargs, "decode_responses": False}
            kwargs["redis_connect_func"] = readonly_on_connect
            connection_class = kwargs.pop("connection_class", redis.Connection)
            pool = redis.ConnectionPool(connection_class=connection_class, host=node.host, port=node.port, **kwargs)
            return redis.Redis(connection_pool=pool)
        assert self._replica_url is not None
        kwargs = {**default_client_kwargs(), **self._url_kwargs, "decode_responses": False}
        return redis.Redis.from_url(parse_store_url(self._replica_url).url, **kwargs)

    def drop(self, exc: BaseException) -> None:
        """Read the primary for :data:`REPLICA_RETRY_S` seconds after the replica failed with ``exc``."""
        log.warning(
            "replica reads of namespace %r go to the primary for %.0f s: %s", self._keys.namespace, REPLICA_RETRY_S, exc
        )
        self.close()
        self._retry_at = time.monotonic() + REPLICA_RETRY_S

    def snapshot(self, reader: redis.Redis) -> RawSnapshot | None:
        """The snapshot's parts as the replica holds them; None if it has not seen the namespace (or its
        first tasks) yet, or failed.

        MULTI/EXEC, not the script: replicas (and cluster replicas after READONLY) serve read-only
        transactions on every Redis version, and the reads are still one atomic step."""
        try:
            pipe = reader.pipeline(transaction=True)
            pipe.hmget(self._keys.meta, ["pool_version", "algorithm", "pool_size"])
            pipe.getrange(self._keys.scores, 0, SNAPSHOT_FIRST_BYTES - 1)
            pipe.hget(self._keys.counters, "num_completed")
            (version, name, size), head, clock = pipe.execute()
            blob = read_pool(reader, self._keys, bytes(head), int(size or 0) * RECORD_SIZE)
        except REPLICA_ERRORS as exc:
            self.drop(exc)
            return None
        if version is None or not blob:
            return None
        return int(version), blob, name, clock

    @property
    def address(self) -> str | None:
        """``host:port`` of the connected replica, or None."""
        if self._reader is None:
            return None
        kwargs = self._reader.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}"

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
