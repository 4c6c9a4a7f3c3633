"""Redis store: the curriculum's shared state in Redis, written only by the Lua scripts in ``lua/``.

No client-side lock exists: every write is one script call, atomic on the server. The connection is
made lazily and re-made in a forked or unpickled process; what crosses process boundaries is how to
connect (a URL, connection kwargs or a cluster's node addresses), never a socket.

Redis Cluster: every key of a namespace carries the hash tag ``{cr:<ns>}``, so a namespace lives in one
slot and every script, transaction and pipeline of the store runs on the primary owning that slot;
namespaces spread over the primaries. Pass a ``redis.cluster.RedisCluster`` or a URL with
``?cluster=true``. Replica reads (opt-in) serve only the score snapshot and the statistics; every write,
and every read a write depends on, goes to the primary.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import redis
import redis.exceptions
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import REPLICA, ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.crc import key_slot
from redis.retry import Retry

from curriculum_redis.algorithms import DEFAULT_ALGORITHM, algorithm_of, get_algorithm
from curriculum_redis.config import AnyAlgorithmConfig, parse_algorithm_json
from curriculum_redis.errors import ConfigError, CredentialsError, ScriptError, StoreError, StoreUnavailableError
from curriculum_redis.state import (
    LABEL_STAT_FIELDS,
    SCHEMA_VERSION,
    CurriculumState,
    LabelStats,
    TaskRecord,
)
from curriculum_redis.store.base import (
    Eviction,
    EvictionOutcome,
    OutcomeBatch,
    RecordResult,
    ScoreSnapshot,
    current_counters,
)
from curriculum_redis.store.fastpath import ScriptRunner
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import INT_TASK_FIELDS
from curriculum_redis.store.scripts import record_script, script_sources
from curriculum_redis.tasks import Task

T = TypeVar("T")

log = logging.getLogger(__name__)

Client: TypeAlias = "redis.Redis | RedisCluster"
"""What the store, the admin functions and StageCurriculum accept: a ``redis.Redis`` (a standalone server
or the primary of a replica set) or a ``redis.cluster.RedisCluster``."""

REPLICA_RETRY_S = 5.0
"""After a replica read fails (replica down, failed over, no longer serving the slot), reads go to the
primary for this long before a replica is tried again."""


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class StoreURL:
    """A store URL split into what redis-py gets and curriculum_redis's own query options.

    Options (removed from the URL before redis-py sees it, so they fit in ``CurriculumConfig.redis_url``):

    - ``cluster=true``: a Redis Cluster; the URL names any one node, the others are discovered.
    - ``read_from_replicas=true``: on a cluster, read the score snapshot and the statistics from a replica
      of the namespace's slot.
    - ``replica=host:port`` (or a percent-encoded URL): on a standalone primary, read them from this
      replica; ``host:port`` keeps the primary URL's scheme, credentials and db.
    """

    url: str
    cluster: bool = False
    read_from_replicas: bool = False
    replica_url: str | None = None


TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("0", "false", "no", "off", "")


def _flag(name: str, value: str) -> bool:
    if value.lower() in TRUE_VALUES:
        return True
    if value.lower() in FALSE_VALUES:
        return False
    raise ConfigError(f"URL option {name}={value!r} must be true or false")


def parse_store_url(url: str) -> StoreURL:
    """Split off curriculum_redis's query options (see :class:`StoreURL`)."""
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    cluster = read_from_replicas = False
    replica: str | None = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "cluster":
            cluster = _flag(name, value)
        elif name == "read_from_replicas":
            read_from_replicas = _flag(name, value)
        elif name == "replica":
            if replica is not None:
                raise ConfigError("give at most one replica= URL option")
            replica = value
        else:
            kept.append((name, value))
    if cluster is False and read_from_replicas is False and replica is None:
        clean = url  # untouched (urlunsplit would turn unix:///path into unix:/path)
    else:
        query = f"?{urlencode(kept)}" if kept else ""
        clean = f"{parts.scheme}://{parts.netloc}{parts.path}{query}"
    replica_url = None
    if replica is not None:
        if "://" in replica:
            replica_url = replica
        else:
            if parts.scheme == "unix" or ":" not in replica:
                raise ConfigError(f"replica={replica!r} must be host:port (or a URL), with a redis:// primary URL")
            userinfo = parts.netloc.rpartition("@")[0]
            netloc = f"{userinfo}@{replica}" if userinfo else replica
            replica_url = urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))
        read_from_replicas = True
    return StoreURL(clean, cluster, read_from_replicas, replica_url)


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
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"redis URL must start with redis://, rediss:// or unix://, got {redact(url)!r}")
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


CLUSTER_ONLY_KWARGS = ("redis_connect_func", "host", "port", "retry", "nodes_flag", "connection_pool")
"""Connection kwargs of a cluster's node manager that a connection of our own to one node must not take."""


def readonly_on_connect(connection: Any) -> None:
    """Connect, then READONLY: a cluster replica serves reads of its primary's slots only to such connections."""
    connection.on_connect()
    connection.send_command("READONLY")
    if text(connection.read_response()) != "OK":
        raise redis.exceptions.ConnectionError("READONLY refused by the replica")


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


def meta_fields(hypers: AnyAlgorithmConfig) -> dict[str, str]:
    """The meta fields the scripts read, as plain fields readable in redis-cli: the algorithm's name and
    hyperparameters, the success threshold, the capacity and the algorithm's task fields."""
    algorithm = algorithm_of(hypers)
    fields = algorithm.meta_fields(hypers)
    fields["algorithm"] = algorithm.name
    fields["success_threshold"] = repr(float(hypers.success_threshold))
    fields["capacity"] = str(hypers.num_active_tasks)
    fields["fields"] = ",".join(algorithm.stored_fields())
    return fields


class RedisStore:
    """The store protocol on Redis (standalone, replicated or cluster).

    Args:
        client: a ``redis.Redis`` or a ``redis.cluster.RedisCluster``. A client that decodes responses, or a
            cluster client routing reads to replicas, is replaced by a twin that does neither (same nodes
            and settings): scores arrive as packed bytes, and reads a write depends on must see the primary.
        namespace: the curriculum's namespace (the ``{cr:<ns>}`` hash tag of its keys).
        replica_url: a standalone primary's replica to read the score snapshot and statistics from.
        read_from_replicas: on a cluster, read them from a replica of the namespace's slot (default: on
            when ``client`` was made with ``read_from_replicas`` or a ``load_balancing_strategy``).

    Replica reads are asynchronous copies: a snapshot read there may lag the primary; its
    ``pool_version`` (bumped by every eviction and creation) tells which pool it shows. A replica that is
    unreachable, or has not yet seen the namespace, is skipped for the primary.
    """

    _client_obj: Client | None

    def __init__(
        self,
        client: Client,
        namespace: str,
        *,
        replica_url: str | None = None,
        read_from_replicas: bool | None = None,
    ) -> None:
        self._namespace = namespace
        self.keys = NamespaceKeys(namespace)
        self._url: str | None = None
        self._client_kwargs: dict[str, Any] = {}
        self._connection_class: type[redis.Connection] | None = None
        self._cluster = False
        self._cluster_nodes: list[tuple[str, int]] = []
        self._replica_url = replica_url
        self._read_from_replicas = replica_url is not None
        self._set_client(client)
        if read_from_replicas is not None:
            self._read_from_replicas = read_from_replicas
        self._check_replica_options()

    @classmethod
    def from_url(
        cls,
        url: str,
        namespace: str,
        *,
        cluster: bool | None = None,
        replica_url: str | None = None,
        read_from_replicas: bool | None = None,
        **client_kwargs: Any,
    ) -> RedisStore:
        """A store that connects lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        ``cluster``, ``replica_url`` and ``read_from_replicas`` can also be given in the URL's query
        (``?cluster=true``, ``?replica=host:port``, ``?read_from_replicas=true``, see :class:`StoreURL`),
        which is how ``CurriculumConfig(redis_url=...)`` asks for them; keyword arguments win.
        ``client_kwargs`` go to ``redis.Redis.from_url`` or ``RedisCluster.from_url``.
        """
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis URL must start with redis://, rediss:// or unix://, got {redact(url)!r}")
        parsed = parse_store_url(url)
        store = cls.__new__(cls)
        store._namespace = namespace
        store.keys = NamespaceKeys(namespace)
        store._url = url
        store._client_kwargs = dict(client_kwargs)
        store._connection_class = None
        store._cluster = parsed.cluster if cluster is None else cluster
        store._cluster_nodes = []
        store._replica_url = replica_url or parsed.replica_url
        store._read_from_replicas = parsed.read_from_replicas or replica_url is not None
        if read_from_replicas is not None:
            store._read_from_replicas = read_from_replicas
        store._check_replica_options()
        if store._cluster and url.startswith("unix://"):
            raise ConfigError("a Redis Cluster is reached over TCP: use a redis:// or rediss:// URL")
        store._reset_connection()
        return store

    def _check_replica_options(self) -> None:
        if self._cluster and self._replica_url is not None:
            raise ConfigError("a cluster finds its replicas itself: use read_from_replicas, not a replica URL")
        if self._read_from_replicas and not self._cluster and self._replica_url is None:
            raise ConfigError("read_from_replicas needs a cluster, or a replica URL for a standalone primary")

    def _set_client(self, client: Client) -> None:
        if isinstance(client, RedisCluster):
            self._set_cluster_client(client)
            return
        if not isinstance(client, redis.Redis):
            raise ConfigError(f"client must be a redis.Redis or a RedisCluster, got {type(client).__name__}")
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        if kwargs.get("decode_responses"):
            # Scores arrive as packed bytes: a decoding client would mangle them, so use a twin that does not.
            kwargs["decode_responses"] = False
            client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
        self._connection_class = pool.connection_class
        self._client_kwargs = kwargs
        self._reset_connection()
        self._client_obj = client
        self._pid = os.getpid()

    def _set_cluster_client(self, client: RedisCluster) -> None:
        kwargs = {k: v for k, v in client.nodes_manager.connection_kwargs.items() if k not in CLUSTER_ONLY_KWARGS}
        nodes = sorted({(n.host, n.port) for n in client.get_nodes()})  # type: ignore[no-untyped-call]
        self._cluster = True
        self._cluster_nodes = nodes or [(n.host, n.port) for n in client.startup_nodes]
        self._client_kwargs = kwargs
        routed = bool(client.read_from_replicas or client.load_balancing_strategy)
        self._read_from_replicas = routed
        if kwargs.get("decode_responses") or routed:
            # Bytes responses and every command on primaries; replica reads are the store's own (see _reader).
            client = connect_cluster(
                None, self._cluster_nodes, {"retry": client.retry, **kwargs, "decode_responses": False}, self.where
            )
        self._reset_connection()
        self._client_obj = client
        self._pid = os.getpid()

    def _reset_connection(self) -> None:
        self._client_obj = None
        self._reader_obj: redis.Redis | None = None
        self._reader_retry_at = 0.0
        self._scripts: dict[str, Script] = {}
        self._runners: dict[str, ScriptRunner] = {}
        self._pid = os.getpid()
        self._attached_hypers: AnyAlgorithmConfig | None = None
        self._algorithm_name: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "namespace": self._namespace,
            "url": self._url,
            "client_kwargs": picklable(self._client_kwargs),
            "connection_class": self._connection_class,
            "attached_hypers": self._attached_hypers,
            "cluster": self._cluster,
            "cluster_nodes": self._cluster_nodes,
            "replica_url": self._replica_url,
            "read_from_replicas": self._read_from_replicas,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._namespace = state["namespace"]
        self.keys = NamespaceKeys(self._namespace)
        self._url = state["url"]
        self._client_kwargs = state["client_kwargs"]
        self._connection_class = state["connection_class"]
        self._cluster = state.get("cluster", False)
        self._cluster_nodes = state.get("cluster_nodes", [])
        self._replica_url = state.get("replica_url")
        self._read_from_replicas = state.get("read_from_replicas", False)
        self._reset_connection()
        self._attached_hypers = state["attached_hypers"]

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def where(self) -> str:
        """Where the data lives, without credentials."""
        if self._url is not None:
            return redact(self._url)
        if self._cluster:
            return "redis cluster at " + ",".join(f"{host}:{port}" for host, port in self._cluster_nodes[:3])
        host = self._client_kwargs.get("host") or self._client_kwargs.get("path") or "?"
        return f"redis at {host}:{self._client_kwargs.get('port', '')}"

    @property
    def is_cluster(self) -> bool:
        return self._cluster

    @property
    def client(self) -> Client:
        """The connection (to the primaries), made on first use and re-made in a forked child."""
        if self._client_obj is None or self._pid != os.getpid():
            attached = self._attached_hypers
            self._reset_connection()
            self._attached_hypers = attached
            self._client_obj = self._connect()
        return self._client_obj

    def _connect(self) -> Client:
        if self._cluster:
            kwargs = {**default_cluster_kwargs(), **self._client_kwargs, "decode_responses": False}
            url = parse_store_url(self._url).url if self._url is not None else None
            try:
                return connect_cluster(url, self._cluster_nodes, kwargs, self.where)
            except redis.exceptions.ConnectionError as exc:
                raise StoreUnavailableError(str(exc)) from exc
        if self._url is not None:
            kwargs = {**default_client_kwargs(), **self._client_kwargs, "decode_responses": False}
            return redis.Redis.from_url(parse_store_url(self._url).url, **kwargs)
        assert self._connection_class is not None
        kwargs = {**default_client_kwargs(), **self._client_kwargs}
        pool = redis.ConnectionPool(connection_class=self._connection_class, **kwargs)
        return redis.Redis(connection_pool=pool)

    # -- replica reads ---------------------------------------------------------------------------

    @property
    def replica_address(self) -> str | None:
        """``host:port`` of the replica the snapshot and statistics are read from, or None (the primary)."""
        reader = self._reader()
        if reader is None:
            return None
        kwargs = reader.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}"

    def _reader(self) -> redis.Redis | None:
        """A client of a replica for the read-only snapshot and statistics; None means read the primary."""
        if not self._read_from_replicas:
            return None
        client = self.client  # first, so a forked child drops the parent's reader with its connections
        if self._reader_obj is None and time.monotonic() >= self._reader_retry_at:
            try:
                self._reader_obj = self._connect_reader(client)
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                self._drop_reader(exc)
            if self._reader_obj is None:
                self._reader_retry_at = time.monotonic() + REPLICA_RETRY_S
        return self._reader_obj

    def _connect_reader(self, client: Client) -> redis.Redis | None:
        if isinstance(client, RedisCluster):
            replicas = [
                node
                for node in client.nodes_manager.slots_cache.get(key_slot(self.keys.meta.encode()), [])
                if node.server_type == REPLICA
            ]
            if not replicas:
                return None
            node = random.choice(replicas)
            kwargs = {k: v for k, v in client.nodes_manager.connection_kwargs.items() if k not in CLUSTER_ONLY_KWARGS}
            kwargs = {**default_client_kwargs(), **kwargs, "decode_responses": False}
            kwargs["redis_connect_func"] = readonly_on_connect
            connection_class = kwargs.pop("connection_class", redis.Connection)
            pool = redis.ConnectionPool(connection_class=connection_class, host=node.host, port=node.port, **kwargs)
            return redis.Redis(connection_pool=pool)
        assert self._replica_url is not None
        extra = self._client_kwargs if self._url is not None else {}
        kwargs = {**default_client_kwargs(), **extra, "decode_responses": False}
        return redis.Redis.from_url(parse_store_url(self._replica_url).url, **kwargs)

    def _drop_reader(self, exc: BaseException) -> None:
        log.warning(
            "replica reads of namespace %r go to the primary for %.0f s: %s", self._namespace, REPLICA_RETRY_S, exc
        )
        if self._reader_obj is not None:
            self._reader_obj.close()
        self._reader_obj = None
        self._reader_retry_at = time.monotonic() + REPLICA_RETRY_S

    def _read(self, fn: Callable[[Client], T]) -> T:
        """``fn`` on the replica when replica reads are on and the replica answers, else on the primary."""
        reader = self._reader()
        if reader is not None:
            try:
                return fn(reader)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.ResponseError) as exc:  # fmt: skip
                self._drop_reader(exc)  # down, failed over, or no longer serving the slot (MOVED)
        return self._call(lambda: fn(self.client))

    def _source(self, name: str) -> str:
        """A script's source; ``record_outcomes:<algorithm>`` is record_outcomes.lua with the algorithm's
        update spliced in (each algorithm's composed script has its own sha)."""
        base, _, algorithm = name.partition(":")
        if algorithm:
            return record_script(script_sources()[base], algorithm)
        return script_sources()[name]

    def _namespace_algorithm(self) -> str:
        """The algorithm this store runs: the attached one, else the namespace's (read once)."""
        if self._attached_hypers is not None:
            return self._attached_hypers.algorithm
        if self._algorithm_name is None:
            raw = self._call(lambda: self.client.hget(self.keys.meta, "algorithm"))
            if raw is None:
                return DEFAULT_ALGORITHM  # no namespace yet: the script says CR_NO_NAMESPACE
            self._algorithm_name = text(raw)
        return self._algorithm_name

    def _script(self, name: str) -> Script:
        script = self._scripts.get(name)
        if script is None:
            # Script.__call__ runs EVALSHA and, on NOSCRIPT (restart, failover, SCRIPT FLUSH), loads it again.
            script = self._scripts[name] = self.client.register_script(self._source(name))
        return script

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.exceptions.AuthenticationError as exc:
            # A subclass of ConnectionError, but no outage: buffering would only delay the same refusal.
            raise CredentialsError(self.where, exc) from exc
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.ClusterError,  # incl. CLUSTERDOWN: no primary for the slot (a failover)
            redis.exceptions.SlotNotCoveredError,
        ) as exc:
            raise StoreUnavailableError(f"cannot reach {self.where}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            message = str(exc)
            if message.startswith("CR_"):
                raise ScriptError(message) from exc
            raise StoreError(f"{self.where} refused a command: {message}") from exc
        except redis.exceptions.RedisClusterException as exc:
            raise StoreError(f"{self.where}: {exc}") from exc

    def _invoke(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA on a dedicated connection when the client is a plain ``redis.Redis`` (the cheap
        path, see store.fastpath), through the client's Script object otherwise (a RedisCluster sends
        it to the primary of the keys' slot, and refuses keys of several slots before sending)."""
        client = self.client
        if type(client) is redis.Redis:
            runner = self._runners.get(name)
            if runner is None:
                runner = self._runners[name] = ScriptRunner(client.connection_pool, self._source(name))
            return runner(keys, args)
        return self._script(name)(keys=list(keys), args=list(args))

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script; if the namespace vanished (a Redis restart without persistence, a drop),
        attach again with the last hyperparameters and retry once."""
        try:
            return self._call(lambda: self._invoke(name, keys, args))
        except ScriptError as exc:
            if not str(exc).startswith("CR_NO_NAMESPACE") or self._attached_hypers is None:
                raise
            self.attach(self._attached_hypers)
            return self._call(lambda: self._invoke(name, keys, args))

    # -- protocol --------------------------------------------------------------------------------

    def attach(self, hypers: AnyAlgorithmConfig) -> AnyAlgorithmConfig | None:
        fields = meta_fields(hypers)
        args: list[Any] = [SCHEMA_VERSION, hypers.model_dump_json(), f"{time.time():.3f}"]
        for name, value in fields.items():
            args += [name, value]
        stored = self._call(lambda: self._script("attach")(keys=[self.keys.meta, self.keys.scores], args=args))
        self._attached_hypers = hypers
        if not stored:
            return None
        try:
            return parse_algorithm_json(stored)
        except ValueError as exc:
            raise StoreError(f"namespace {self._namespace!r} holds unreadable hyperparameters: {exc}") from exc

    def read_hypers(self) -> AnyAlgorithmConfig | None:
        stored = self._call(lambda: self.client.hget(self.keys.meta, "hypers"))
        if stored is None:
            return None
        try:
            return parse_algorithm_json(stored)
        except ValueError as exc:
            raise StoreError(f"namespace {self._namespace!r} holds unreadable hyperparameters: {exc}") from exc

    def register_client(self) -> int:
        # Random, not a server counter: ids stay unique even if the namespace is wiped and recreated.
        return secrets.randbits(52) + 1

    def create_tasks(self, tasks: Sequence[Task]) -> list[int]:
        k = self.keys
        keys = [k.meta, k.counters, k.scores, k.labels]
        args: list[Any] = [len(tasks)]
        for task in tasks:
            keys += [k.task(task.task_id), k.label(task.label_hash)]
            args += [task.task_id, task.label_hash, task.label]
        created = self._run("create_tasks", keys, args)
        return [int(x) for x in created]

    def record(self, batch: OutcomeBatch) -> RecordResult:
        k = self.keys
        label_hashes = batch.label_hashes()
        label_index = {h: i + 1 for i, h in enumerate(label_hashes)}
        grouped = batch.by_task()
        keys = [k.meta, k.counters, k.scores, k.clients]
        keys += [k.task(task_id) for task_id in grouped]
        keys += [k.label(h) for h in label_hashes]
        args: list[Any] = [batch.client_id, batch.seq, len(grouped), len(label_hashes)]
        for task_id, outcomes in grouped.items():
            args += [task_id, outcomes[0].slot, label_index[outcomes[0].label_hash], len(outcomes)]
            args += [("f" if o.failed else "") + repr(float(o.score)) for o in outcomes]
        for h in label_hashes:
            args += [h, batch.scheduled.get(h, 0)]
        script = f"record_outcomes:{self._namespace_algorithm()}"
        applied, recorded, evicted = self._run(script, keys, args)
        return RecordResult(bool(applied), int(recorded), int(evicted))

    def evict_and_replace(self, eviction: Eviction) -> EvictionOutcome:
        k = self.keys
        victim_hash = self._call(lambda: self.client.hget(k.task(eviction.victim_id), "label_hash"))
        if victim_hash is None:
            return "victim_gone"
        new = eviction.replacement
        keys = [
            k.meta, k.counters, k.scores, k.labels,
            k.task(eviction.victim_id), k.task(new.task_id), k.label(int(victim_hash)), k.label(new.label_hash),
        ]
        args = [
            eviction.victim_id, int(victim_hash), new.task_id, new.label_hash, new.label, eviction.reason,
            eviction.min_presentations, repr(float(eviction.max_lp)), eviction.min_failures,
        ]
        result = self._run("evict_and_replace", keys, args)
        outcome = result.decode() if isinstance(result, bytes) else str(result)
        return outcome  # type: ignore[return-value]

    def snapshot(self) -> ScoreSnapshot:
        """The scores of the pool; from a replica when replica reads are on (possibly behind the primary,
        by whole script calls: a replica applies each script's writes atomically)."""
        reader = self._reader()
        if reader is not None:
            snap = self._replica_snapshot(reader)
            if snap is not None:
                return snap
        return self._primary_snapshot()

    def _primary_snapshot(self) -> ScoreSnapshot:
        k = self.keys
        version, blob, name, clock = self._call(
            lambda: self._script("read_snapshot")(keys=[k.meta, k.scores, k.counters])
        )
        return self._from_bytes(int(version), bytes(blob), name, clock)

    @staticmethod
    def _from_bytes(version: int, blob: bytes, name: bytes | str | None, clock: Any) -> ScoreSnapshot:
        algorithm = get_algorithm(text(name) if name else DEFAULT_ALGORITHM)
        return ScoreSnapshot.from_bytes(version, blob, algorithm.dtype(), int(clock or 0))

    def _replica_snapshot(self, reader: redis.Redis) -> ScoreSnapshot | None:
        # MULTI/EXEC, not the script: replicas (and cluster replicas after READONLY) serve read-only
        # transactions on every Redis version, and the two reads are still one atomic step.
        try:
            pipe = reader.pipeline(transaction=True)
            pipe.hmget(self.keys.meta, ["pool_version", "algorithm"])
            pipe.get(self.keys.scores)
            pipe.hget(self.keys.counters, "num_completed")
            (version, name), blob, clock = pipe.execute()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ResponseError) as exc:
            self._drop_reader(exc)
            return None
        if version is None or not blob:
            return None  # the replica has not seen the namespace (or its first tasks) yet
        snap = self._from_bytes(int(version), bytes(blob), name, clock)
        return snap if snap.size else None

    def read_task(self, task_id: int) -> TaskRecord | None:
        flat = self._call(lambda: self._script("read_task")(keys=[self.keys.task(task_id), self.keys.labels]))
        if not flat:
            return None
        raw = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return task_record(task_id, raw)

    def labels(self) -> dict[int, str]:
        raw = self._read(lambda client: client.hgetall(self.keys.labels))
        return {int(h): text(label) for h, label in raw.items()}

    def label_stats(self) -> dict[int, LabelStats]:
        return self._read(self._label_stats_on)

    def _label_stats_on(self, client: Client) -> dict[int, LabelStats]:
        hashes = [int(h) for h in client.hkeys(self.keys.labels)]
        pipe = client.pipeline(transaction=False)
        for h in hashes:
            pipe.hgetall(self.keys.label(h))
        rows = pipe.execute()
        return {h: label_stats_from(row) for h, row in zip(hashes, rows, strict=True)}

    def counters(self) -> dict[str, int]:
        raw = self._read(lambda client: client.hgetall(self.keys.counters))
        return current_counters({text(name): int(value) for name, value in raw.items()})

    def export_state(self) -> CurriculumState:
        """A consistent copy of the namespace: every read after the first is one MULTI/EXEC, and the
        whole read is repeated if the pool changed in between."""
        k = self.keys
        for _ in range(100):
            first = self._primary_snapshot()
            ids = first.task_ids.tolist()
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(k.meta)
            pipe.hgetall(k.counters)
            pipe.hgetall(k.labels)
            pipe.hgetall(k.clients)
            for task_id in ids:
                pipe.hgetall(k.task(task_id))
            for h in first.label_hashes.tolist():
                pipe.hgetall(k.label(h))
            meta, counters, labels_raw, clients, *rows = self._call(pipe.execute)
            if b"hypers" not in meta:
                raise StoreError(f"namespace {self._namespace!r} does not exist on {self.where}")
            if int(meta.get(b"pool_version", -1)) == first.pool_version:
                break
        else:
            raise StoreError(f"namespace {self._namespace!r} changes too fast to export a consistent copy")
        labels = {int(h): text(v) for h, v in labels_raw.items()}
        tasks = []
        for task_id, row in zip(ids, rows[: len(ids)], strict=True):
            raw = {text(f): text(v) for f, v in row.items()}
            raw["label"] = labels.get(int(raw["label_hash"]), "")
            tasks.append(task_record(task_id, raw))
        return CurriculumState(
            namespace=self._namespace,
            hypers=parse_algorithm_json(meta[b"hypers"]),
            pool_version=int(meta.get(b"pool_version", 0)),
            tasks=sorted(tasks, key=lambda t: t.slot),
            labels=labels,
            label_stats=self._call(lambda: self._label_stats_on(self.client)),
            counters=current_counters({text(n): int(v) for n, v in counters.items()}),
            client_seqs={int(c): int(s) for c, s in clients.items()},
        )

    def import_state(self, state: CurriculumState) -> None:
        """Replace the namespace by ``state`` in one MULTI/EXEC: all of it is written, or none."""
        if len(state.tasks) > state.hypers.num_active_tasks:
            raise StoreError(
                f"state holds {len(state.tasks)} tasks for num_active_tasks={state.hypers.num_active_tasks}"
            )
        k = self.keys
        existing = self._call(lambda: k.fixed + self._scan(k.task_pattern) + self._scan(k.label_pattern))
        pipe = self.client.pipeline(transaction=True)
        if existing:
            pipe.delete(*existing)
        meta: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "hypers": state.hypers.model_dump_json(),
            "created_at": f"{time.time():.3f}",
            "pool_version": state.pool_version + 1,
            "pool_size": len(state.tasks),
            **meta_fields(state.hypers),
        }
        pipe.hset(k.meta, mapping=cast(Mapping[Any, Any], meta))
        counters = current_counters(state.counters)
        pipe.hset(k.counters, mapping=cast(Mapping[Any, Any], counters))
        if state.labels:
            pipe.hset(k.labels, mapping={str(h): v for h, v in state.labels.items()})
        if state.client_seqs:
            pipe.hset(k.clients, mapping={str(c): s for c, s in state.client_seqs.items()})
        algorithm = algorithm_of(state.hypers)
        records = np.zeros(state.hypers.num_active_tasks, dtype=algorithm.dtype())
        stored = [n for n in algorithm.snapshot_fields() if not n.startswith("unused_")]
        for slot, task in enumerate(sorted(state.tasks, key=lambda t: t.slot)):
            dumped = task.model_dump()
            fields = {n: dumped[n] for n in ("label_hash", *stored[2:])}
            fields["slot"] = slot
            pipe.hset(k.task(task.task_id), mapping={n: format_field(v) for n, v in fields.items()})
            for name in stored:
                records[slot][name] = float(getattr(task, name))
        pipe.set(k.scores, records.tobytes())
        for h, stats in state.label_stats.items():
            pipe.hset(k.label(h), mapping={n: format_field(v) for n, v in stats.model_dump().items()})
        self._call(pipe.execute)

    def touch(self, ttl_s: float) -> None:
        """Refresh the expiry of every key of the namespace (names derived, never SCANned); new task and
        label keys get the same expiry from the scripts, which read ``ttl_ms`` from meta."""
        k = self.keys
        ttl_ms = int(ttl_s * 1000)
        ids = self._primary_snapshot().task_ids.tolist()
        hashes = [int(h) for h in self._call(lambda: self.client.hkeys(k.labels))]
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(k.meta, "ttl_ms", ttl_ms)
        for key in [k.meta, k.counters, k.scores, k.labels, k.clients, *map(k.task, ids), *map(k.label, hashes)]:
            pipe.pexpire(key, ttl_ms)
        self._call(pipe.execute)

    def _scan(self, pattern: str) -> list[str]:
        return scan_namespace(self.client, self._namespace, pattern)

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        if self._pid == os.getpid():
            if self._client_obj is not None:
                self._client_obj.close()
            if self._reader_obj is not None:
                self._reader_obj.close()
        self._client_obj = None
        self._reader_obj = None
        self._scripts = {}
        self._runners = {}


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def scan_namespace(client: Client, namespace: str, pattern: str) -> list[str]:
    """SCAN for ``pattern`` (a pattern of the namespace's keys): on a cluster, on the primary owning the
    namespace's slot only (a plain ``scan_iter`` there walks every primary)."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(NamespaceKeys(namespace).meta)  # type: ignore[no-untyped-call]
        return [text(key) for key in client.scan_iter(match=pattern, count=1000, target_nodes=node)]
    return [text(key) for key in client.scan_iter(match=pattern, count=1000)]


def format_field(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def task_record(task_id: int, raw: dict[str, str]) -> TaskRecord:
    values: dict[str, Any] = {
        n: (int(v) if n in INT_TASK_FIELDS else float(v)) for n, v in raw.items() if n != "label"
    }
    return TaskRecord(task_id=task_id, label=raw.get("label", ""), **values)


def label_stats_from(row: dict[bytes, bytes]) -> LabelStats:
    raw = {f.decode(): v.decode() for f, v in row.items()}
    values: dict[str, Any] = {"label": raw.get("label", "")}
    for name in LABEL_STAT_FIELDS:
        if name in raw:
            values[name] = float(raw[name]) if name in ("score_sum", "lp_ema") else int(float(raw[name]))
    return LabelStats(**values)

