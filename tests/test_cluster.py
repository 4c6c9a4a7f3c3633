"""curriculum_redis on a real local Redis Cluster (3 primaries with a replica each, tests/cluster.py), and
replica reads on a primary + replica pair. Select with ``-m cluster``."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from cluster import LocalCluster, churn_interleaved, report_outcomes_interleaved, slots_of
from redis.cluster import LoadBalancingStrategy, RedisCluster
from redis.crc import key_slot
from test_redis_processes import GENERATOR, assert_counts_match_reports, assert_namespace_consistent, config_json

from curriculum_redis import (
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    StageConfig,
    StageCurriculum,
    StageCurriculumConfig,
)
from curriculum_redis.admin import (
    drop_namespace,
    export_namespace,
    import_namespace,
    list_namespaces,
    snapshot,
    wait_for_replicas,
)
from curriculum_redis.errors import ConfigError, StoreError
from curriculum_redis.store import transfer
from curriculum_redis.store.base import Eviction, Outcome, OutcomeBatch
from curriculum_redis.store.connection import client_from_url
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.schema import SEGMENT_RECORDS
from curriculum_redis.store.url import parse_store_url
from curriculum_redis.tasks import Task

pytestmark = [pytest.mark.cluster, pytest.mark.redis]
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def namespaces(redis_cluster: LocalCluster, cluster_url: str) -> list[str]:
    """Three namespaces whose hash tags land on three different primaries."""
    return redis_cluster.namespaces_on_distinct_primaries("run")


@pytest.fixture
def cluster_client(redis_cluster: LocalCluster, cluster_url: str) -> Any:
    client = redis_cluster.client()
    try:
        yield client
    finally:
        client.close()


# --------------------------------------------------------------------------- placement


def test_the_namespaces_land_on_three_different_primaries(redis_cluster: LocalCluster, namespaces: list[str]) -> None:
    owners = {}
    for namespace in namespaces:
        keys = NamespaceKeys(namespace)
        all_keys = [*keys.fixed, keys.task(123), keys.label(456), *keys.stage_all]
        # CLUSTER KEYSLOT, asked of the server: every key of the namespace is in the slot of its hash tag.
        server_slots = {redis_cluster.keyslot(key) for key in all_keys}
        assert server_slots == slots_of(all_keys) == {key_slot(("cr:" + namespace).encode())}
        (slot,) = server_slots
        owners[namespace] = redis_cluster.owner_of_slot(slot)  # by CLUSTER SLOTS
        # CLUSTER NODES agrees: the owner is a primary whose ranges hold the slot.
        node = next(n for n in redis_cluster.topology() if n["port"] == owners[namespace])
        assert node["role"] == "master" and any(lo <= slot <= hi for lo, hi in node["slots"])
    assert len(set(owners.values())) == 3 == len(redis_cluster.primaries())


# --------------------------------------------------------------------------- URLs and clients


def test_store_urls_carry_the_cluster_and_replica_options() -> None:
    parsed = parse_store_url("redis://:pw@h1:7000/0?cluster=true&read_from_replicas=yes&socket_timeout=3")
    assert parsed.url == "redis://:pw@h1:7000/0?socket_timeout=3"
    assert parsed.cluster and parsed.read_from_replicas and parsed.replica_url is None
    parsed = parse_store_url("redis://u:pw@primary:6379/2?replica=replica:6380")
    assert parsed.url == "redis://u:pw@primary:6379/2" and not parsed.cluster
    assert parsed.replica_url == "redis://u:pw@replica:6380/2" and parsed.read_from_replicas
    with pytest.raises(ConfigError, match="true or false"):
        parse_store_url("redis://h:1/0?cluster=maybe")
    with pytest.raises(ConfigError, match="read_from_replicas needs"):
        RedisStore.from_url("redis://h:1/0?read_from_replicas=true", "x")
    with pytest.raises(ConfigError, match="finds its replicas itself"):
        RedisStore.from_url("redis://h:1/0?cluster=true&replica=h:2", "x")
    # CurriculumConfig needs no cluster field: the URL says it.
    assert CurriculumConfig(task_generator=GENERATOR, redis_url="redis://h:1/0?cluster=true").redis_url


def test_a_store_from_a_cluster_client_or_url_pickles_and_forks(
    redis_cluster: LocalCluster, cluster_url: str, namespaces: list[str]
) -> None:
    namespace = namespaces[0]
    store = RedisStore.from_url(cluster_url, namespace)
    store.attach(LearningProgressConfig(num_active_tasks=4))
    store.create_tasks([Task(i, f"l{i}", {}) for i in range(1, 5)])
    assert isinstance(store.client, RedisCluster) and store.is_cluster
    decoding = redis_cluster.client(decode_responses=True)
    from_client = RedisStore(decoding, namespace)
    assert from_client.client is not decoding  # a bytes twin on the same nodes
    for original in (store, from_client):
        clone = pickle.loads(pickle.dumps(original))
        assert clone.is_cluster and clone.snapshot().task_ids.tolist() == [1, 2, 3, 4]
        clone.close()
    decoding.close()

    # fork: the child makes its own cluster connections and client id.
    config = CurriculumConfig.model_validate_json(config_json(cluster_url, namespaces[1], num_active_tasks=8))
    curriculum = Curriculum(config)
    for _ in range(40):
        curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    child = fork.Process(target=_forked_child, args=(curriculum, curriculum.client_id, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) is True
    curriculum.close()
    counters = RedisStore.from_url(cluster_url, namespaces[1]).counters()
    assert counters["num_completed"] == 140


def _forked_child(curriculum: Curriculum, parent_client: int, queue: Any) -> None:
    for _ in range(100):
        curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    curriculum.close()
    queue.put(curriculum.client_id != parent_client)


# --------------------------------------------------------------------------- many processes


@pytest.mark.slow  # real processes
def test_four_processes_on_three_nodes_give_exact_counts(
    redis_cluster: LocalCluster, cluster_url: str, namespaces: list[str]
) -> None:
    """The multi-process exactness test of the Redis store, on three namespaces owned by three primaries:
    each of 4 processes feeds all three in turn."""
    algorithm = {"num_active_tasks": 16, "max_evictions_per_refresh": 0}
    configs = [config_json(cluster_url, namespace, **algorithm) for namespace in namespaces]
    n = 5000
    with SPAWN.Pool(4) as pool:
        results = pool.starmap(report_outcomes_interleaved, [(configs, n, seed) for seed in range(4)])
    assert len({r["pid"] for r in results}) == 4
    for namespace in namespaces:
        store = RedisStore.from_url(cluster_url, namespace)
        counters = store.counters()
        assert counters["num_completed"] == counters["num_scheduled"] == 4 * n
        assert counters["num_outcomes_for_evicted_tasks"] == 0
        assert len({r["client_ids"][namespace] for r in results}) == 4
        reported = assert_counts_match_reports(
            store, [r["per_task"][namespace] for r in results], [r["labels"][namespace] for r in results]
        )
        shared = [t for t in reported if sum(t in r["per_task"][namespace] for r in results) == 4]
        assert shared, f"no task of {namespace} was fed by all four processes"
        store.close()
        # All of the namespace's keys are on its owner, none on the other primaries.
        owner = redis_cluster.owner_of_namespace(namespace)
        for port in redis_cluster.primaries():
            with LocalCluster.node_client(port) as node:
                found = list(node.scan_iter(match="{cr:" + namespace + "}:*"))
            assert (len(found) >= 16 + 5) if port == owner else not found


@pytest.mark.slow  # real processes
def test_concurrent_eviction_on_three_nodes_keeps_pools_at_capacity_and_counters_consistent(
    cluster_url: str, cluster_client: RedisCluster, namespaces: list[str]
) -> None:
    configs = [
        config_json(
            cluster_url, namespace, batch_size=8, num_active_tasks=24, min_presentations_for_eviction=1,
            eviction_threshold_percentile=1.0, max_evictions_per_refresh=8,
        )
        for namespace in namespaces
    ]  # fmt: skip
    with SPAWN.Pool(4) as pool:
        reported = sum(pool.starmap(churn_interleaved, [(configs, 1200, seed) for seed in range(4)]))
    for namespace in namespaces:
        # The checks of test_redis_processes, through a RedisCluster (SCAN walks every primary).
        counters = assert_namespace_consistent(cluster_client, namespace, 24)  # type: ignore[arg-type]
        assert cluster_client.hget("{cr:" + namespace + "}:meta", "pool_size") == b"24"
        assert counters["num_evicted"] > 50
        assert counters["num_completed"] == reported


# --------------------------------------------------------------------------- admin and CLI


def _fill(url: str, namespace: str, episodes: int = 300, tasks: int = 12) -> Curriculum:
    payload = config_json(url, namespace, batch_size=16, num_active_tasks=tasks, max_evictions_per_refresh=0)
    config = CurriculumConfig.model_validate_json(payload)
    curriculum = Curriculum(config)
    rng = np.random.default_rng(len(namespace))
    for _ in range(episodes):
        curriculum.update_task_performance(curriculum.get_task().task_id, float(rng.random()))
    curriculum.flush()
    return curriculum


def test_export_import_list_drop_and_snapshot_across_nodes(
    redis_cluster: LocalCluster, cluster_url: str, cluster_client: RedisCluster, namespaces: list[str], tmp_path: Path
) -> None:
    states = {}
    for namespace in namespaces:
        curriculum = _fill(cluster_url, namespace)
        states[namespace] = curriculum.get_state()
        curriculum.close()
    # Export each namespace and import it under a name owned by the next primary: a cross-node copy.
    targets = redis_cluster.namespaces_on_distinct_primaries("copy")
    owner = {ns: redis_cluster.owner_of_namespace(ns) for ns in namespaces + targets}
    for i, namespace in enumerate(namespaces):
        target = next(t for t in targets if owner[t] == owner[namespaces[(i + 1) % 3]])
        assert owner[target] != owner[namespace]
        path = tmp_path / f"{namespace}.crx"
        info = export_namespace(cluster_client, namespace, path)
        assert info.tasks == 12
        imported = import_namespace(cluster_client, target, path)
        assert not imported.replaced and imported.tasks == 12
        copy = RedisStore(cluster_client, target).export_state()
        original = states[namespace]
        assert copy.tasks == original.tasks and copy.labels == original.labels
        assert copy.label_stats == original.label_stats and copy.counters == original.counters
        assert copy.client_seqs == original.client_seqs and copy.pool_version == original.pool_version + 1
        with pytest.raises(Exception, match="already exists"):
            import_namespace(cluster_client, target, path)
        assert import_namespace(cluster_client, target, path, replace=True).replaced
        assert_namespace_consistent(cluster_client, target, 12)  # type: ignore[arg-type]

    listed = {info.namespace: info for info in list_namespaces(cluster_client)}
    assert set(listed) == set(namespaces) | set(targets)
    assert all(listed[ns].tasks == 12 and listed[ns].completions == 300 for ns in namespaces)

    saved = snapshot(cluster_client, namespace=namespaces[1])
    assert sorted(int(n.node.rsplit(":", 1)[1]) for n in saved.nodes) == redis_cluster.primaries()
    assert saved.node.endswith(f":{owner[namespaces[1]]}") and all(Path(n.path).exists() for n in saved.nodes)

    dropped = targets[0]
    assert drop_namespace(cluster_client, dropped) > 12
    assert not list(cluster_client.scan_iter(match="{cr:" + dropped + "}:*"))
    assert {info.namespace for info in list_namespaces(cluster_client)} == set(namespaces) | set(targets[1:])


def test_the_cli_inspects_and_reports_stats_of_namespaces_on_every_node(
    cluster_url: str, namespaces: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cli = pytest.importorskip("curriculum_redis.cli")
    for namespace in namespaces:
        _fill(cluster_url, namespace, episodes=200, tasks=10).close()
    for namespace in namespaces:
        assert cli.main(["--redis-url", cluster_url, "--namespace", namespace, "inspect", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert len(rows) == 10 and sum(row["completions"] for row in rows) == 200
        assert cli.main(["--redis-url", cluster_url, "--namespace", namespace, "stats", "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["num_completed"] == 200
        assert cli.main(["--redis-url", cluster_url, "--namespace", namespace, "inspect"]) == 0
        assert namespace in capsys.readouterr().out


def test_a_stage_curriculum_runs_on_the_cluster(redis_cluster: LocalCluster, cluster_url: str) -> None:
    config = StageCurriculumConfig(
        stages=[StageConfig(name=n, env_cfg={}, window=3, advance_threshold=1.0) for n in ("a", "b", "c")]
    )
    by_url = StageCurriculum(config, cluster_url, "stages")
    client = redis_cluster.client()
    by_client = StageCurriculum(config, client, "stages")
    assert [by_url.record_episode(0, True) for _ in range(3)] == [0, 0, 1]
    assert by_client.current_stage().index == 1 and by_client.state().advancements == 1
    clone = pickle.loads(pickle.dumps(by_client))
    assert clone.reset_to(2) == 2 and by_url.state().index == 2
    for sc in (by_url, by_client, clone):
        sc.close()
    client.close()


# --------------------------------------------------------------------------- the KEYS contract

KEY_CHECK_PRELUDE = r"""
local __real, __declared = redis, {}
for _, k in ipairs(KEYS) do __declared[k] = true end
local __first_key = {GET=1, SET=1, GETRANGE=1, SETRANGE=1, STRLEN=1, APPEND=1, INCR=1, INCRBY=1,
  HGET=1, HSET=1, HSETNX=1, HMGET=1, HMSET=1, HGETALL=1, HDEL=1, HEXISTS=1, HINCRBY=1, HINCRBYFLOAT=1,
  HKEYS=1, HVALS=1, HLEN=1, LLEN=1, LPUSH=1, RPUSH=1, LPOP=1, RPOP=1, LRANGE=1, LTRIM=1, LINDEX=1,
  PEXPIRE=1, EXPIRE=1, PTTL=1, TTL=1, TYPE=1, SADD=1, SREM=1, SMEMBERS=1, SISMEMBER=1, ZADD=1, ZSCORE=1, XADD=1}
local __all_keys = {DEL=1, UNLINK=1, EXISTS=1, MGET=1, TOUCH=1}
local function __check(cmd, ...)
  local name, args = string.upper(cmd), {...}
  local keys
  if __all_keys[name] then keys = args
  elseif __first_key[name] then keys = {args[1]}
  elseif name == 'TIME' then keys = {}
  else error('CR_CONTRACT unclassified command ' .. name, 0) end
  for _, k in ipairs(keys) do
    if not __declared[k] then error('CR_CONTRACT ' .. name .. ' on undeclared key ' .. tostring(k), 0) end
  end
end
local redis = setmetatable({
  call = function(cmd, ...) __check(cmd, ...); return __real.call(cmd, ...) end,
  pcall = function(cmd, ...) __check(cmd, ...); return __real.pcall(cmd, ...) end,
}, {__index = __real})
"""


class UsedSources(dict[str, str]):
    """The scripts with the KEYS check in front; remembers which ones the library fetched."""

    def __init__(self, sources: dict[str, str]) -> None:
        super().__init__({name: KEY_CHECK_PRELUDE + source for name, source in sources.items()})
        self.used: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.used.add(name)
        return super().__getitem__(name)


def test_every_script_touches_only_the_keys_it_declares(
    redis_cluster: LocalCluster, cluster_url: str, namespaces: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every script runs with a prelude that checks each redis.call's keys against KEYS, on namespaces of all
    three primaries. A key built inside Lua of *another* namespace would also be refused by the cluster
    itself (non-local key); one of the *same* namespace is in the same slot, and only the check sees it."""
    import curriculum_redis.store.scripts
    from curriculum_redis.store.scripts import script_sources

    checked = UsedSources(script_sources())
    monkeypatch.setattr(curriculum_redis.store.scripts, "script_sources", lambda: checked)
    stages = StageCurriculumConfig(
        stages=[StageConfig(name=n, env_cfg={}, window=2, advance_threshold=0.5) for n in ("a", "b", "c")]
    )
    for namespace in namespaces:
        config = CurriculumConfig.model_validate_json(
            config_json(
                cluster_url, namespace, batch_size=4, num_active_tasks=8, min_presentations_for_eviction=1,
                eviction_threshold_percentile=1.0, max_evictions_per_refresh=4, max_consecutive_failures=2,
            )
        ).model_copy(update={"ttl_s": 600.0})  # fmt: skip
        curriculum = Curriculum(config)
        rng = np.random.default_rng(0)
        for i in range(400):
            task = curriculum.get_task()
            if i % 7 == 0:
                curriculum.report_task_failure(task.task_id)
            else:
                curriculum.update_task_performance(task.task_id, float(rng.random()))
        state = curriculum.get_state()
        curriculum.load_state(state)
        assert curriculum.store.read_task(int(curriculum.store.snapshot().task_ids[0])) is not None  # type: ignore[attr-defined]
        assert curriculum.store.counters()["num_evicted"] > 0
        curriculum.close()
        drop_namespace(redis_cluster.client(), namespace)  # a namespace keeps its algorithm: the stages come next
        sc = StageCurriculum(stages, cluster_url, namespace)
        for _ in range(4):
            sc.record_episode(sc.current_stage().index, True)
        sc.reset_to(0)
        sc.close()
    # A pool wider than one :scores segment: its scripts declare the further segments too.
    drop_namespace(redis_cluster.client(), namespaces[0])
    wide = RedisStore.from_url(cluster_url, namespaces[0])
    wide.attach(LearningProgressConfig(num_active_tasks=SEGMENT_RECORDS + 40))
    wide.create_tasks([Task(i, f"lvl{i % 3}", {}) for i in range(1, SEGMENT_RECORDS + 41)])
    last = Task(SEGMENT_RECORDS + 40, f"lvl{(SEGMENT_RECORDS + 40) % 3}", {})
    slot = wide.snapshot().slot_of()[last.task_id]
    assert slot >= SEGMENT_RECORDS
    wide.record(OutcomeBatch(1, 1, [Outcome(last.task_id, last.label_hash, 1.0, slot=slot)]))
    assert wide.evict_and_replace(Eviction(last.task_id, Task(10**6, "new", {}), "low_score", 1, 1.0, 99)) == "evicted"
    wide.close()
    drop_namespace(redis_cluster.client(), namespaces[0])
    assert checked.used == set(script_sources()), "a script was never exercised by this test"

    # The check and the cluster, against deliberately bad scripts.
    client = redis_cluster.client()
    home, elsewhere = namespaces[0], namespaces[1]
    same_slot = "return redis.call('HGET', '{cr:' .. ARGV[1] .. '}:task:' .. ARGV[2], 'slot')"
    other_node = "return redis.call('HGET', '{cr:' .. ARGV[1] .. '}:meta', 'capacity')"
    declared = [NamespaceKeys(home).meta]
    assert client.eval(same_slot, 1, *declared, home, 1) is None  # the cluster can't see this one ...
    with pytest.raises(redis.exceptions.ResponseError, match="CR_CONTRACT HGET on undeclared key"):
        client.eval(KEY_CHECK_PRELUDE + same_slot, 1, *declared, home, 1)  # ... the check does
    with pytest.raises(redis.exceptions.ResponseError, match=re.compile("non local key|same slot", re.I)):
        client.eval(other_node, 1, *declared, elsewhere)  # the cluster refuses another node's key
    with pytest.raises(redis.exceptions.ResponseError, match="CR_CONTRACT HGET on undeclared key"):
        client.eval(KEY_CHECK_PRELUDE + other_node, 1, *declared, elsewhere)
    store = RedisStore(client, home)
    with pytest.raises(StoreError, match="CR_CONTRACT"):
        store._call(lambda: client.eval(KEY_CHECK_PRELUDE + same_slot, 1, *declared, home, 1))
    client.close()


# --------------------------------------------------------------------------- replica reads


def test_snapshot_and_stats_read_from_a_replica_of_a_standalone_primary(fresh_redis_factory: Any) -> None:
    # The primary delays a diskless full sync by repl-diskless-sync-delay (5 s by default): not here.
    primary = fresh_redis_factory(persistence="none", extra_args=["--repl-diskless-sync-delay", "0"])
    replica = fresh_redis_factory(persistence="none")
    replica_client = redis.Redis.from_url(replica.url)
    replica_client.replicaof("127.0.0.1", primary.port)
    deadline = time.monotonic() + 60
    while replica_client.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not connect"
        time.sleep(0.02)
    primary_client = redis.Redis.from_url(primary.url)

    url = f"{primary.url}?replica=127.0.0.1:{replica.port}"
    curriculum = _fill(url, "repl", episodes=200, tasks=8)
    store = curriculum.store
    assert isinstance(store, RedisStore) and store.replica_address == f"127.0.0.1:{replica.port}"
    assert wait_for_replicas(primary_client, "repl", replicas=1, timeout_ms=5000) == 1
    primary_store = RedisStore.from_url(primary.url, "repl")
    exact = primary_store.snapshot()
    gets = _calls(replica_client, "getrange")
    read = store.snapshot()
    assert _calls(replica_client, "getrange") == gets + 1  # served by the replica (one chunk)
    assert read.pool_version == exact.pool_version and read.records.tobytes() == exact.records.tobytes()
    assert store.counters() == primary_store.counters() and store.label_stats() == primary_store.label_stats()

    # Replication stops: the replica's snapshot stays behind, and its pool_version says so.
    replica_client.replicaof("NO", "ONE")
    store.evict_and_replace(_eviction_of(exact))
    assert primary_store.snapshot().pool_version == exact.pool_version + 1
    assert store.snapshot().pool_version == exact.pool_version

    # The replica goes away: reads fall back to the primary.
    replica.stop()
    assert store.snapshot().pool_version == exact.pool_version + 1
    curriculum.close()
    for c in (primary_store, store):
        c.close()
    primary_client.close()


def _eviction_of(snap: Any) -> Any:
    from curriculum_redis.store.base import Eviction

    return Eviction(int(snap.task_ids[0]), Task(999_999, "fresh", {}), "low_score", 0, float("inf"))


def _calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_snapshot_and_stats_read_from_a_replica_of_the_namespaces_slot(
    redis_cluster: LocalCluster, cluster_url: str, namespaces: list[str]
) -> None:
    for namespace in namespaces:
        curriculum = _fill(cluster_url + "&read_from_replicas=true", namespace, episodes=200, tasks=8)
        store = curriculum.store
        assert isinstance(store, RedisStore)
        primary = redis_cluster.owner_of_namespace(namespace)
        (replica,) = redis_cluster.replicas_of(primary)
        assert store.replica_address == f"127.0.0.1:{replica}"
        client = redis_cluster.client()
        assert wait_for_replicas(client, namespace, replicas=1, timeout_ms=5000) == 1
        exact = RedisStore(client, namespace).snapshot()
        with LocalCluster.node_client(replica) as node:
            gets = _calls(node, "getrange")
            read = store.snapshot()
            assert _calls(node, "getrange") == gets + 1  # served by the replica (one chunk)
        assert read.pool_version == exact.pool_version and read.records.tobytes() == exact.records.tobytes()
        assert store.counters()["num_completed"] == 200
        # A cluster client made to read from replicas turns the store's replica reads on; its commands
        # that writes depend on still go to primaries (the store uses a primary-only twin).
        routed = redis_cluster.client(load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN)
        routed_store = RedisStore(routed, namespace)
        assert routed_store.replica_address == f"127.0.0.1:{replica}"
        assert routed_store.snapshot().pool_version == exact.pool_version
        for c in (routed_store, curriculum):
            c.close()
        routed.close()
        client.close()


def test_client_from_url_makes_the_right_client(redis_url: str, cluster_url: str) -> None:
    plain = client_from_url(redis_url)
    cluster = client_from_url(cluster_url)
    assert type(plain) is redis.Redis and isinstance(cluster, RedisCluster)
    assert cluster.ping() and plain.ping()
    plain.close()
    cluster.close()


def test_a_drop_on_the_cluster_is_retried_when_a_task_is_created_meanwhile(
    cluster_url: str, cluster_client: RedisCluster, namespaces: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the fence gone, a worker replaces a task after the SCAN (the new hash is found in the pool inside
    # the WATCH), then again between that read and EXEC: the unwatched transaction would leave the second
    # task's hash behind as an orphan; the watched one starts over, without scanning again.
    namespace = namespaces[0]
    _fill(cluster_url, namespace).close()
    keys = NamespaceKeys(namespace)
    store = RedisStore(cluster_client, namespace)
    hypers = store.read_hypers()
    assert hypers is not None
    store.attach(hypers)
    victims = [int(k.decode().rsplit(":", 1)[1]) for k in cluster_client.scan_iter(match=keys.task_pattern)]
    real_scan, real_live = transfer.scan_namespace, transfer.live_keys
    scans: list[int] = []
    live_reads: list[int] = []

    def evict() -> None:  # as if the fence had expired (fence_namespace.lua): the WATCH is what is tested
        cluster_client.hdel(keys.meta, "fence_until_ms")
        new = Task(10**9 + len(scans) + len(live_reads), "late", {"late": True})
        assert store.evict_and_replace(Eviction(victims.pop(), new, min_presentations=0)) == "evicted"

    def scan_then_evict(client: Any, ns: str, pattern: str) -> list[str]:
        found = real_scan(client, ns, pattern)
        scans.append(len(found))
        evict()
        return found

    def read_then_evict(client: Any, k: NamespaceKeys, scanned_at: Any) -> list[str]:
        found = real_live(client, k, scanned_at)
        live_reads.append(len(found))
        if len(live_reads) == 1:
            evict()
        return found

    monkeypatch.setattr(transfer, "scan_namespace", scan_then_evict)
    monkeypatch.setattr(transfer, "live_keys", read_then_evict)
    assert transfer.CLUSTER_CAN_WATCH
    drop_namespace(cluster_client, namespace)
    assert len(scans) == 1 and len(live_reads) == 2  # the first EXEC was refused by WATCH, not scanned again
    assert not list(cluster_client.scan_iter(match="{cr:" + namespace + "}:*"))
    store.close()
