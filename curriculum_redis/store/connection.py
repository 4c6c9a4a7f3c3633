"""Clients from URLs or kwargs, fork-safe; redis errors mapped to ours.

What crosses a process boundary is how to connect (a URL, connection kwargs or a cluster's node
addresses, see :func:`picklable`), never a socket: each process makes its own client.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeAlias

import redis
import redis.exceptions
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from curriculum_redis.errors import ConfigError, CredentialsError, ScriptError, StoreError, StoreUnavailableError
from curriculum_redis.store.url import parse_store_url, redact

Client: TypeAlias = "redis.Redis | RedisCluster"
"""What the store, the admin functions and StageCurriculum accept: a ``redis.Redis`` (a standalone server
or the primary of a replica set) or a ``redis.cluster.RedisCluster``."""

CLUSTER_ONLY_KWARGS = ("redis_connect_func", "host", "port", "retry", "nodes_flag", "connection_pool")
"""Connection kwargs of a cluster's node manager that a connection of our own to one node must not take."""


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def default_client_kwargs() -> dict[str, Any]:
    """Retry briefly on connection errors (a retried write is harmless: batches are de-duplicated),
    and never hang forever on a dead server."""
    return {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=3),
        "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        "socket_connect_timeout": 5.0,
        "socket_timeout": 30.0,
        "health_check_interval": 30,
    }


def default_cluster_kwargs() -> dict[str, Any]:
    """The cluster counterpart of :func:`default_client_kwargs` (a RedisCluster retries at the cluster level,
    following MOVED/ASK and refreshing its slot map, and accepts no per-connection ``retry``)."""
    return {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=3),
        "socket_connect_timeout": 5.0,
        "socket_timeout": 30.0,
    }


def client_from_url(url: str, **kwargs: Any) -> Client:
    """A client for a store URL: a ``RedisCluster`` when it says ``?cluster=true``, else a ``redis.Redis``
    (curriculum_redis's own query options removed). For the admin functions and the CLI. A cluster client
    connects at once (to discover the nodes): an unreachable cluster raises ``redis.ConnectionError``."""
    parsed = parse_store_url(url)
    if parsed.cluster:
        return connect_cluster(parsed.url, None, {**default_cluster_kwargs(), **kwargs}, redact(url))
    return redis.Redis.from_url(parsed.url, **{**default_client_kwargs(), **kwargs})


def connect_cluster(
    url: str | None, nodes: Sequence[tuple[str, int]] | None, kwargs: dict[str, Any], where: str
) -> RedisCluster:
    if url is not None and url.startswith("unix://"):
        raise ConfigError("a Redis Cluster is reached over TCP: use a redis:// or rediss:// URL")
    try:
        if url is not None:
            return RedisCluster.from_url(url, **kwargs)
        startup = [ClusterNode(host, port) for host, port in nodes or ()]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=startup, **kwargs)
    except redis.exceptions.RedisClusterException as exc:
        raise redis.exceptions.ConnectionError(f"cannot reach the Redis Cluster at {where}: {exc}") from exc


def connect(
    url: str | None,
    cluster: bool,
    cluster_nodes: Sequence[tuple[str, int]],
    connection_class: type[redis.Connection] | None,
    client_kwargs: dict[str, Any],
    where: str,
) -> Client:
    """A bytes-returning client from what a store keeps: a URL, a cluster's nodes, or the connection
    class and kwargs of a client it was given."""
    if cluster:
        kwargs = {**default_cluster_kwargs(), **client_kwargs, "decode_responses": False}
        try:
            return connect_cluster(parse_store_url(url).url if url else None, cluster_nodes, kwargs, where)
        except redis.exceptions.ConnectionError as exc:
            raise StoreUnavailableError(str(exc)) from exc
    if url is not None:
        kwargs = {**default_client_kwargs(), **client_kwargs, "decode_responses": False}
        return redis.Redis.from_url(parse_store_url(url).url, **kwargs)
    assert connection_class is not None
    pool = redis.ConnectionPool(connection_class=connection_class, **{**default_client_kwargs(), **client_kwargs})
    return redis.Redis(connection_pool=pool)


def readonly_on_connect(connection: Any) -> None:
    """Connect, then READONLY: a cluster replica serves reads of its primary's slots only to such connections."""
    connection.on_connect()
    connection.send_command("READONLY")
    if text(connection.read_response()) != "OK":
        raise redis.exceptions.ConnectionError("READONLY refused by the replica")


def picklable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The connection settings that can cross a process boundary (locks, callbacks and pools can't;
    the defaults of :func:`default_client_kwargs` replace them in the new process)."""
    out = {}
    for name, value in kwargs.items():
        try:
            pickle.dumps(value)
        except (TypeError, AttributeError, pickle.PicklingError):
            continue
        out[name] = value
    return out


def mapped_error(exc: BaseException, where: str) -> StoreError | None:
    """Our error for a redis-py error (None for anything else)."""
    if isinstance(exc, redis.exceptions.AuthenticationError):
        # A subclass of ConnectionError, but no outage: buffering would only delay the same refusal.
        return CredentialsError(where, exc)
    if isinstance(
        exc,
        redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError
        | redis.exceptions.ClusterError  # incl. CLUSTERDOWN: no primary for the slot (a failover)
        | redis.exceptions.SlotNotCoveredError,
    ):
        return StoreUnavailableError(f"cannot reach {where}: {exc}")
    if isinstance(exc, redis.exceptions.ResponseError):
        message = str(exc)
        if message.startswith("CR_"):
            return ScriptError(message)
        return StoreError(f"{where} refused a command: {message}")
    if isinstance(exc, redis.exceptions.RedisClusterException):
        return StoreError(f"{where}: {exc}")
    return None


class map_errors:  # lower case: used like a function, ``with map_errors(where):``
    """``with map_errors(where):`` raises our error for a redis-py error in the block (see
    :func:`mapped_error`). ``where`` (no credentials) may be a callable, called only on an error."""

    __slots__ = ("_where",)

    def __init__(self, where: str | Callable[[], str]) -> None:
        self._where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            return
        where = self._where if isinstance(self._where, str) else self._where()
        mapped = mapped_error(exc, where)
        if mapped is not None:
            raise mapped from exc
