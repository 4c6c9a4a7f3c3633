"""Clients from URLs or kwargs, fork-safe; redis errors mapped to ours.

What crosses a process boundary is how to connect (a URL, connection kwargs or a cluster's node
addresses, see :func:`picklable`), never a socket: each process makes its own client.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeAlias

import redis
import redis.exceptions
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from curriculum_redis.errors import (
    ConfigError,
    CredentialsError,
    ScriptError,
    StoreError,
    StoreUnavailableError,
    TLSTrustError,
)
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


@dataclass
class ConnectionSpec:
    """How a store connects: a URL, a cluster's nodes, or the connection class and kwargs of a client it
    was given. This is what crosses a process boundary (pickled with :func:`picklable` kwargs)."""

    url: str | None = None
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    connection_class: type[redis.Connection] | None = None
    cluster: bool = False
    cluster_nodes: list[tuple[str, int]] = field(default_factory=list)
    replica_url: str | None = None
    read_from_replicas: bool = False

    @classmethod
    def of_url(
        cls,
        url: str,
        cluster: bool | None,
        replica_url: str | None,
        read_from_replicas: bool | None,
        client_kwargs: dict[str, Any],
    ) -> ConnectionSpec:
        """The URL's own options (see :class:`~curriculum_redis.store.url.StoreURL`), keyword arguments winning."""
        parsed = parse_store_url(url)
        spec = cls(
            url=url,
            client_kwargs=dict(client_kwargs),
            cluster=parsed.cluster if cluster is None else cluster,
            replica_url=replica_url or parsed.replica_url,
            read_from_replicas=parsed.read_from_replicas or replica_url is not None,
        )
        if read_from_replicas is not None:
            spec.read_from_replicas = read_from_replicas
        if spec.cluster and url.startswith("unix://"):
            raise ConfigError("a Redis Cluster is reached over TCP: use a redis:// or rediss:// URL")
        return spec.checked()

    @classmethod
    def of_client(
        cls, client: Client, replica_url: str | None, read_from_replicas: bool | None
    ) -> tuple[ConnectionSpec, Client]:
        """The spec of ``client``, and the client to use: a twin when ``client`` decodes responses (scores
        arrive as packed bytes) or routes a cluster's reads to replicas (reads a write depends on must see
        the primary; replica reads are the store's own)."""
        if isinstance(client, RedisCluster):
            kwargs = {k: v for k, v in client.nodes_manager.connection_kwargs.items() if k not in CLUSTER_ONLY_KWARGS}
            nodes = sorted({(n.host, n.port) for n in client.get_nodes()})  # type: ignore[no-untyped-call]
            routed = bool(client.read_from_replicas or client.load_balancing_strategy)
            spec = cls(client_kwargs=kwargs, cluster=True, replica_url=replica_url, read_from_replicas=routed)
            spec.cluster_nodes = nodes or [(n.host, n.port) for n in client.startup_nodes]
            if kwargs.get("decode_responses") or routed:
                twin = {"retry": client.retry, **kwargs, "decode_responses": False}
                client = connect_cluster(None, spec.cluster_nodes, twin, spec.where)
        elif isinstance(client, redis.Redis):
            pool = client.connection_pool
            kwargs = dict(pool.connection_kwargs)
            spec = cls(client_kwargs=kwargs, connection_class=pool.connection_class, replica_url=replica_url)
            spec.read_from_replicas = replica_url is not None
            if kwargs.get("decode_responses"):
                kwargs["decode_responses"] = False
                twin_pool = redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
                client = redis.Redis(connection_pool=twin_pool)
        else:
            raise ConfigError(f"client must be a redis.Redis or a RedisCluster, got {type(client).__name__}")
        if read_from_replicas is not None:
            spec.read_from_replicas = read_from_replicas
        return spec.checked(), client

    def checked(self) -> ConnectionSpec:
        if self.cluster and self.replica_url is not None:
            raise ConfigError("a cluster finds its replicas itself: use read_from_replicas, not a replica URL")
        if self.read_from_replicas and not self.cluster and self.replica_url is None:
            raise ConfigError("read_from_replicas needs a cluster, or a replica URL for a standalone primary")
        return self

    @property
    def where(self) -> str:
        """Where the data lives, without credentials."""
        if self.url is not None:
            return redact(self.url)
        if self.cluster:
            return "redis cluster at " + ",".join(f"{host}:{port}" for host, port in self.cluster_nodes[:3])
        host = self.client_kwargs.get("host") or self.client_kwargs.get("path") or "?"
        return f"redis at {host}:{self.client_kwargs.get('port', '')}"

    def connect(self) -> Client:
        """A new client, returning bytes."""
        if self.cluster:
            kwargs = {**default_cluster_kwargs(), **self.client_kwargs, "decode_responses": False}
            url = parse_store_url(self.url).url if self.url is not None else None
            try:
                return connect_cluster(url, self.cluster_nodes, kwargs, self.where)
            except redis.exceptions.ConnectionError as exc:
                raise StoreUnavailableError(str(exc)) from exc
        if self.url is not None:
            kwargs = {**default_client_kwargs(), **self.client_kwargs, "decode_responses": False}
            return redis.Redis.from_url(parse_store_url(self.url).url, **kwargs)
        assert self.connection_class is not None
        kwargs = {**default_client_kwargs(), **self.client_kwargs}
        return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=self.connection_class, **kwargs))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "client_kwargs": picklable(self.client_kwargs)}


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


TRANSIENT_REPLIES = ("OOM ", "READONLY ", "LOADING ", "BUSY ", "MASTERDOWN ", "NOREPLICAS ", "TRYAGAIN ")
"""Refusals that end by themselves or by an operator's fix on the server (memory freed, a failover done, a
script finished): an outage to ride out (sample from the snapshot, buffer, retry), not the caller's error."""

TLS_TRUST_MARKS = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "WRONG_VERSION_NUMBER")


def _transient_reply(message: str) -> bool:
    """A refusal of the server itself, or of a write inside a script (quoted after the script's own words)."""
    return message.startswith(TRANSIENT_REPLIES) or any(
        f"-{m}" in message or f" {m}" in message for m in ("OOM command not allowed", "READONLY You can't write")
    )


def mapped_error(exc: BaseException, where: str) -> StoreError | None:
    """Our error for a redis-py error (None for anything else)."""
    if isinstance(exc, redis.exceptions.AuthenticationError):
        # A subclass of ConnectionError, but no outage: buffering would only delay the same refusal.
        return CredentialsError(where, exc)
    if isinstance(exc, redis.exceptions.ConnectionError) and any(m in str(exc) for m in TLS_TRUST_MARKS):
        return TLSTrustError(where, exc)
    if isinstance(exc, redis.exceptions.ReadOnlyError | redis.exceptions.OutOfMemoryError):
        return StoreUnavailableError(f"{where} cannot take writes now: {exc}")
    if isinstance(exc, redis.exceptions.ResponseError) and _transient_reply(str(exc)):
        return StoreUnavailableError(f"{where} cannot take writes now: {exc}")
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

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            return
        where = self._where if isinstance(self._where, str) else self._where()
        mapped = mapped_error(exc, where)
        if mapped is not None:
            raise mapped from exc
