"""A real local Redis Cluster for the tests: ``redis-server --cluster-enabled yes`` processes on free loopback
ports, joined with ``redis-cli --cluster create``, torn down by PID. Also the worker functions of the
multi-process cluster tests (importable by name, so "spawn" children can run them).

The binary is ``$REDIS_SERVER``, else ``/usr/bin/redis-server`` (Debian's 7.x), else whatever
:func:`curriculum_redis.demo.binaries.find_redis_server` finds; redis-cli is ``$REDIS_CLI``, else the one next
to that server, else :func:`curriculum_redis.demo.binaries.find_redis_cli`.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from curriculum_redis.demo.binaries import EmbeddedRedisError, find_redis_cli, find_redis_server
from curriculum_redis.demo.server import EmbeddedRedis

SYSTEM_REDIS_SERVER = "/usr/bin/redis-server"
NODE_TIMEOUT_MS = 3000


def server_binary() -> str:
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    if os.access(SYSTEM_REDIS_SERVER, os.X_OK):
        return SYSTEM_REDIS_SERVER
    return find_redis_server()


def cli_binary(server: str) -> str | None:
    if os.environ.get("REDIS_CLI"):
        return find_redis_cli()
    sibling = Path(server).with_name("redis-cli")
    if os.access(sibling, os.X_OK):
        return str(sibling)
    return find_redis_cli()


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_cluster_port(taken: set[int]) -> int:
    """A free port P <= 55535 whose cluster bus port P + 10000 is free too (redis refuses higher ones)."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20_000, 55_535)
        if port not in taken and port + 10_000 not in taken and _bindable(port) and _bindable(port + 10_000):
            return port
    raise EmbeddedRedisError("no free port pair (P, P + 10000) for a cluster node")


def raw_command(port: int, *args: str) -> Any:
    """One command on a fresh connection, its reply unparsed by redis-py's response callbacks."""
    pool = redis.ConnectionPool(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)
    conn = pool.make_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        conn.disconnect()
        pool.disconnect()


def port_is_closed(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return False
    except OSError:
        return True


class LocalCluster:
    """``masters`` primaries (and ``replicas`` replicas of each) of a fresh Redis Cluster in ``base_dir``."""

    def __init__(self, base_dir: Path, masters: int = 3, replicas: int = 1, timeout: float = 30.0) -> None:
        self.base_dir = base_dir
        self.masters = masters
        self.replicas = replicas
        self.timeout = timeout
        self.binary = server_binary()
        self.nodes: list[EmbeddedRedis] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalCluster:
        try:
            for i in range(self.masters * (1 + self.replicas)):
                self._start_node(i)
            self._create()
            self.wait_until_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, i: int, attempts: int = 5) -> None:
        for attempt in range(attempts):
            taken = {p for node in self.nodes for p in (node.port, node.port + 10_000)}
            node = EmbeddedRedis(
                data_dir=self.base_dir / f"node-{i}-{attempt}",
                port=free_cluster_port(taken),
                persistence="none",
                binary=self.binary,
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    "--repl-diskless-sync-delay", "0",
                ],
            )  # fmt: skip
            try:
                node.start()
            except EmbeddedRedisError:
                node.stop()
                if attempt == attempts - 1:
                    raise
                continue  # the port (or its bus port) was taken meanwhile
            self.nodes.append(node)
            return

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        cli = cli_binary(self.binary)
        if cli is None:
            raise EmbeddedRedisError("no redis-cli found to create the cluster; set $REDIS_CLI")
        cmd = [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise EmbeddedRedisError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def wait_until_ok(self) -> None:
        """Every node says cluster_state:ok and knows every other node; every replica's link is up."""
        deadline = time.monotonic() + self.timeout
        expected = len(self.nodes)
        while True:
            pending = []
            for node in self.nodes:
                with self.node_client(node.port) as client:
                    info = client.cluster("INFO")
                    known = int(info.get("cluster_known_nodes", 0))
                    if info.get("cluster_state") != "ok" or known != expected:
                        pending.append(f"{node.port}: {info.get('cluster_state')}, knows {known}/{expected}")
                        continue
                    repl = client.info("replication")
                    if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                        pending.append(f"{node.port}: replica link {repl.get('master_link_status')}")
                        continue
                # Every node's view of the roles has converged (gossip lags the replicas' own state).
                roles = [n["role"] for n in self.topology(node.port)]
                if roles.count("replica") != self.masters * self.replicas:
                    pending.append(f"{node.port}: sees roles {roles}")
            if not pending:
                return
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"cluster not ready after {self.timeout} s: {pending}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop every node by PID (SIGTERM, then SIGKILL), then wait until their ports are closed."""
        ports = []
        for node in self.nodes:
            with contextlib.suppress(Exception):
                ports.append(node.port)
                node.stop()
        deadline = time.monotonic() + 10
        while not all(port_is_closed(port) for port in ports) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.nodes = []

    # ------------------------------------------------------------------ access

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """The URL form that RedisStore.from_url and CurriculumConfig.redis_url understand."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0?cluster=true"

    def client(self, **kwargs: Any) -> RedisCluster:
        nodes = [ClusterNode("127.0.0.1", port) for port in self.ports]
        return RedisCluster(startup_nodes=nodes, **kwargs)

    @staticmethod
    def node_client(port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)

    def topology(self, port: int | None = None) -> list[dict[str, Any]]:
        """``CLUSTER NODES`` of one node (the first by default): [{port, id, role, master_id, slots}]."""
        out = []
        for line in str(raw_command(port or self.ports[0], "CLUSTER", "NODES")).strip().splitlines():
            parts = line.split()
            ranges = []
            for part in parts[8:]:
                if part.startswith("["):
                    continue  # a slot being migrated
                lo, _, hi = part.partition("-")
                ranges.append((int(lo), int(hi or lo)))
            out.append({
                "id": parts[0],
                "port": int(parts[1].split("@")[0].rsplit(":", 1)[1]),
                "role": "master" if "master" in parts[2] else "replica",
                "master_id": None if parts[3] == "-" else parts[3],
                "slots": ranges,
            })  # fmt: skip
        return out

    def primaries(self) -> list[int]:
        return sorted(n["port"] for n in self.topology() if n["role"] == "master")

    def owner_of_slot(self, slot: int) -> int:
        """The port of the primary serving ``slot``, by ``CLUSTER SLOTS``."""
        with self.node_client(self.ports[0]) as client:
            for lo, hi, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if int(lo) <= slot <= int(hi):
                    return int(primary[1])
        raise LookupError(f"slot {slot} is not served")

    def replicas_of(self, primary_port: int) -> list[int]:
        nodes = self.topology()
        master_id = next(n["id"] for n in nodes if n["port"] == primary_port)
        return sorted(n["port"] for n in nodes if n["master_id"] == master_id)

    def keyslot(self, key: str) -> int:
        """``CLUSTER KEYSLOT``, asked of the server (not computed here)."""
        with self.node_client(self.ports[0]) as client:
            return int(client.execute_command("CLUSTER KEYSLOT", key))

    def owner_of_namespace(self, namespace: str) -> int:
        return self.owner_of_slot(self.keyslot("{cr:" + namespace + "}:meta"))

    def namespaces_on_distinct_primaries(self, stem: str, count: int | None = None) -> list[str]:
        """One namespace per primary (``count`` of them, all by default): ``<stem>-<i>`` for the first i
        whose hash tag lands on a primary not yet taken."""
        primaries = self.primaries()
        wanted = len(primaries) if count is None else count
        owners: dict[int, str] = {}
        for i in range(10_000):
            namespace = f"{stem}-{i}"
            owner = self.owner_of_slot(key_slot(("{cr:" + namespace + "}").encode()))
            owners.setdefault(owner, namespace)
            if len(owners) == wanted:
                return [owners[port] for port in sorted(owners)]
        raise LookupError(f"no {wanted} namespaces named {stem}-<i> on distinct primaries")

    def flush(self) -> None:
        """FLUSHALL on every primary (replicas follow), then wait until the replicas have it too."""
        for port in self.primaries():
            with self.node_client(port) as client:
                client.flushall()
        self.wait_for_replicas()

    def wait_for_replicas(self, timeout: float = 10.0) -> None:
        """Until every replica has processed its primary's whole replication stream (so far)."""
        deadline = time.monotonic() + timeout
        for primary in self.primaries():
            with self.node_client(primary) as client:
                target = int(client.info("replication")["master_repl_offset"])
            for replica in self.replicas_of(primary):
                with self.node_client(replica) as client:
                    while int(client.info("replication").get("slave_repl_offset", -1)) < target:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"replica {replica} of {primary} did not catch up")
                        time.sleep(0.01)


# --------------------------------------------------------------------------- workers


def report_outcomes_interleaved(config_jsons: list[str], n_outcomes: int, seed: int) -> dict[str, Any]:
    """One process feeding several curricula (namespaces) in turn, ``n_outcomes`` episodes to each;
    returns what it reported, per namespace and task."""
    from curriculum_redis import Curriculum, CurriculumConfig

    curricula = [Curriculum(CurriculumConfig.model_validate_json(c)) for c in config_jsons]
    rng = np.random.default_rng(seed)
    per_task: dict[str, dict[int, int]] = {c.config.namespace: {} for c in curricula}
    labels: dict[str, dict[int, str]] = {c.config.namespace: {} for c in curricula}
    for _ in range(n_outcomes):
        for curriculum in curricula:
            namespace = curriculum.config.namespace
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, float(rng.random()))
            per_task[namespace][task.task_id] = per_task[namespace].get(task.task_id, 0) + 1
            labels[namespace][task.task_id] = task.label
    for curriculum in curricula:
        curriculum.close()
    return {
        "per_task": per_task,
        "labels": labels,
        "client_ids": {c.config.namespace: c.client_id for c in curricula},
        "pid": os.getpid(),
    }


def churn_interleaved(config_jsons: list[str], n_outcomes: int, seed: int) -> int:
    """Episodes with aggressive eviction on several namespaces in turn; returns outcomes per namespace."""
    from curriculum_redis import Curriculum, CurriculumConfig

    curricula = [Curriculum(CurriculumConfig.model_validate_json(c)) for c in config_jsons]
    rng = np.random.default_rng(seed)
    for _ in range(n_outcomes):
        for curriculum in curricula:
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, float(rng.random() < 0.3))
    for curriculum in curricula:
        curriculum.close()
    return n_outcomes


def slots_of(keys: Iterable[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}
