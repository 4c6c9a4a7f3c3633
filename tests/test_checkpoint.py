"""Checkpoints and lifecycle on real redis-servers: RDB/AOF crashes, export/import, damaged files,
hyperparameter mismatches, hostile input, namespaces, TTL, failing tasks and epoch counters."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import redis

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    CheckpointError,
    ConfigError,
    Curriculum,
    CurriculumConfig,
    CurriculumState,
    HyperparameterMismatchError,
    InvalidScoreError,
    LearningProgressConfig,
    SamplerConfig,
    StoreError,
    Task,
    admin,
)
from curriculum_redis.state import SCHEMA_VERSION
from curriculum_redis.store.base import Eviction, Outcome, OutcomeBatch
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.store.redis import RedisStore

GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3], "size": [8, 16]}, label="maze")
HYPERS: dict[str, Any] = {
    "num_active_tasks": 16,
    "min_samples_for_lp": 3,
    "min_presentations_for_eviction": 4,
    "max_evictions_per_refresh": 2,
}
DEBIAN_REDIS = "/usr/bin/redis-server"
BINARIES = [pytest.param(None, id="default-binary")]
if os.access(DEBIAN_REDIS, os.X_OK):
    BINARIES.append(pytest.param(DEBIAN_REDIS, id="system-binary"))


def make_config(url: str, namespace: str, *, ttl_s: float | None = None, **algorithm: Any) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(**{**HYPERS, **algorithm}),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=16),
        sampler=SamplerConfig(refresh_every_draws=50),
        ttl_s=ttl_s,
    )


def run_episodes(curriculum: Curriculum, n: int, seed: int) -> int:
    """Episodes whose scores depend on the task's level, so LP differs, tasks get evicted and labels vary."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        task = curriculum.get_task()
        if i % 97 == 0:
            curriculum.report_task_failure(task.task_id)
        else:
            level = task.env_cfg["level"]
            curriculum.update_task_performance(task.task_id, float(np.clip(level / 4 + rng.normal(0, 0.2), 0, 1)))
    curriculum.flush()
    return n


def run(config: CurriculumConfig, n: int, seed: int = 0) -> None:
    with Curriculum(config) as curriculum:
        run_episodes(curriculum, n, seed)


def dump_keys(client: redis.Redis, namespace: str) -> dict[bytes, tuple[bytes, Any]]:
    """Every key of the namespace with its type and full value, for before/after comparisons."""
    out: dict[bytes, tuple[bytes, Any]] = {}
    for key in client.scan_iter(match=NamespaceKeys(namespace).pattern, count=1000):
        kind = client.type(key)
        value: Any
        if kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"string":
            value = client.get(key)
        elif kind == b"list":
            value = client.lrange(key, 0, -1)
        elif kind == b"set":
            value = client.smembers(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = client.dump(key)
        out[key] = (kind, value)
    return out


def export_of(client: redis.Redis, namespace: str) -> CurriculumState:
    return RedisStore(client, namespace).export_state()


def comparable(state: CurriculumState) -> dict[str, Any]:
    """A state without the fields an import changes on purpose (its name, the bumped pool_version)."""
    return state.model_dump(exclude={"namespace", "pool_version"})


def handled(counters: dict[str, int]) -> int:
    """Outcomes the store accounted for: recorded, or for a task evicted before they arrived."""
    return counters["num_completed"]


def assert_real_run(state: CurriculumState) -> None:
    """The state carries everything worth checking: evictions, failures, several labels, EMAs."""
    assert state.counters["num_completed"] > 0 and state.counters["num_evicted"] > 0
    assert state.counters["num_failures"] > 0
    assert len(state.labels) >= 4 and len(state.label_stats) == len(state.labels)
    assert any(task.lp > 0 for task in state.tasks)


# --------------------------------------------------------------------------- live checkpoints (RDB / AOF)


@pytest.mark.parametrize("binary", BINARIES)
def test_rdb_snapshot_restores_every_task_label_and_counter_after_sigkill(
    fresh_redis_factory: Any, binary: str | None
) -> None:
    server = fresh_redis_factory(persistence="rdb", binary=binary)
    run(make_config(server.url, "rdb"), 1500)
    client = redis.Redis.from_url(server.url)
    before, keys_before = export_of(client, "rdb"), dump_keys(client, "rdb")
    assert_real_run(before)

    info = admin.snapshot(client)
    assert info.size_bytes and info.size_bytes > 0 and os.path.exists(info.path)
    client.close()
    server.kill()
    server.restart()

    client = redis.Redis.from_url(server.url)
    after = export_of(client, "rdb")
    assert after == before  # tasks (all EMAs), labels, label aggregates, counters, pool_version, client seqs
    assert dump_keys(client, "rdb") == keys_before
    client.close()


def test_aof_keeps_the_writes_made_after_the_last_snapshot(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="aof")
    config = make_config(server.url, "aof")
    run(config, 800, seed=1)
    client = redis.Redis.from_url(server.url)
    admin.snapshot(client)
    at_snapshot = export_of(client, "aof")
    run(config, 800, seed=2)  # written after the snapshot: only the AOF has them
    before, keys_before = export_of(client, "aof"), dump_keys(client, "aof")
    assert before.counters["num_completed"] > at_snapshot.counters["num_completed"]
    assert before.tasks != at_snapshot.tasks
    client.close()

    time.sleep(1.5)  # appendfsync everysec: let the last second reach the disk
    server.kill()
    server.restart()

    client = redis.Redis.from_url(server.url)
    assert export_of(client, "aof") == before
    assert dump_keys(client, "aof") == keys_before
    client.close()


@pytest.mark.parametrize("binary", BINARIES)
def test_snapshot_waits_for_a_save_held_back_by_an_aof_rewrite(fresh_redis_factory: Any, binary: str | None) -> None:
    """While another child process runs, the save must really happen before snapshot() returns
    (redis-py's bgsave() sends BGSAVE SCHEDULE, whose save starts later: on Redis 6 that read as done)."""
    server = fresh_redis_factory(persistence="aof", binary=binary)
    run(make_config(server.url, "rewrite"), 200)
    client = redis.Redis.from_url(server.url)
    client.config_set("rdb-key-save-delay", 20000)  # 20 ms per key: the rewrite child lives a while
    client.bgrewriteaof()
    info = admin.snapshot(client)
    persistence = client.info("persistence")
    client.config_set("rdb-key-save-delay", 0)
    assert persistence["rdb_bgsave_in_progress"] == 0
    assert persistence["rdb_changes_since_last_save"] == 0
    assert persistence["rdb_last_bgsave_status"] == "ok"
    assert info.size_bytes and os.path.exists(info.path)
    client.close()


# --------------------------------------------------------------------------- portable checkpoints


def test_export_drop_import_into_a_fresh_server_restores_the_namespace_field_by_field(
    redis_url: str, redis_client: redis.Redis, fresh_redis_factory: Any, tmp_path: Path
) -> None:
    run(make_config(redis_url, "exp"), 1500)
    before = export_of(redis_client, "exp")
    records_before = RedisStore(redis_client, "exp").snapshot().records.copy()
    assert_real_run(before)

    path = tmp_path / "exp.crx"
    info = admin.export_namespace(redis_client, "exp", path)
    assert (info.namespace, info.tasks, info.labels) == ("exp", len(before.tasks), len(before.labels))
    assert info.size_bytes == path.stat().st_size
    assert admin.decode_state(path.read_bytes()) == before  # the file holds exactly the namespace

    assert admin.drop_namespace(redis_client, "exp") > 0
    assert dump_keys(redis_client, "exp") == {}

    other = fresh_redis_factory(persistence="none")
    target = redis.Redis.from_url(other.url)
    imported = admin.import_namespace(target, "exp", path)
    assert (imported.namespace, imported.tasks, imported.labels, imported.replaced) == (
        "exp",
        len(before.tasks),
        len(before.labels),
        False,
    )
    after = export_of(target, "exp")
    assert after.namespace == "exp"
    assert after.pool_version == before.pool_version + 1  # bumped: every reader rebuilds its pool
    assert after.tasks == before.tasks  # every EMA, count, label and slot
    assert after.labels == before.labels and after.label_stats == before.label_stats
    assert after.counters == before.counters and after.client_seqs == before.client_seqs
    assert after.hypers == before.hypers
    assert comparable(after) == comparable(before)
    np.testing.assert_array_equal(RedisStore(target, "exp").snapshot().records, records_before)

    # Under another name on the same server, as a second copy.
    admin.import_namespace(target, "exp-copy", path)
    assert comparable(export_of(target, "exp-copy")) == comparable(before)
    assert export_of(target, "exp-copy").namespace == "exp-copy"

    # An existing namespace is refused unless replace=True.
    keys_before = dump_keys(target, "exp")
    with pytest.raises(StoreError, match=r"already exists.*replace=True"):
        admin.import_namespace(target, "exp", path)
    assert dump_keys(target, "exp") == keys_before
    replaced = admin.import_namespace(target, "exp", path, replace=True)
    assert replaced.replaced
    assert comparable(export_of(target, "exp")) == comparable(before)

    # The imported namespace runs on: its labels are there (reference bugs 1.2, 2.4), counts continue.
    with Curriculum(make_config(other.url, "exp")) as resumed:
        assert set(resumed.label_table()) == set(before.labels.values())
        run_episodes(resumed, 100, seed=5)
        stats = resumed.stats()
    assert stats["num_completed"] == handled(before.counters) + 100
    target.close()


def test_get_state_equals_the_content_of_an_export(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    with Curriculum(make_config(redis_url, "same")) as curriculum:
        run_episodes(curriculum, 600, seed=3)
        for _ in range(5):  # buffered, not yet flushed: get_state() writes them first
            curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
        state = curriculum.get_state()
        admin.export_namespace(redis_client, "same", tmp_path / "same.crx")
    assert admin.decode_state((tmp_path / "same.crx").read_bytes()) == state
    assert handled(state.counters) == 605


# --------------------------------------------------------------------------- damaged and foreign files


def framed(payload: bytes) -> bytes:
    """A file with a valid header and checksum around ``payload``: only its content can be wrong."""
    return admin.MAGIC + hashlib.sha256(payload).digest() + payload


def with_state(good: bytes, change: Any) -> bytes:
    """The export with its decoded content changed by ``change(dict)``, re-framed with a valid checksum."""
    raw = msgpack.unpackb(good[len(admin.MAGIC) + admin.DIGEST_SIZE :], raw=False, strict_map_key=False)
    change(raw)
    return framed(msgpack.packb(raw, use_bin_type=True))


def other_schema(good: bytes) -> bytes:
    state = admin.decode_state(good)
    return admin.encode_state(state.model_copy(update={"schema_version": SCHEMA_VERSION + 1}))


def flip_payload_byte(good: bytes) -> bytes:
    data = bytearray(good)
    data[len(admin.MAGIC) + admin.DIGEST_SIZE + len(good) // 3] ^= 0x01
    return bytes(data)


def nan_lp(raw: dict[str, Any]) -> None:
    raw["tasks"][0]["lp"] = float("nan")


def duplicate_task(raw: dict[str, Any]) -> None:
    raw["tasks"].append(dict(raw["tasks"][0]))


def unknown_field(raw: dict[str, Any]) -> None:
    raw["tasks"][0]["pickle"] = "cos\nsystem\n"


def wrong_label(raw: dict[str, Any]) -> None:
    raw["tasks"][0]["label"] = "not-its-label"


def negative_count(raw: dict[str, Any]) -> None:
    raw["tasks"][0]["completions"] = -1


def too_many_tasks(raw: dict[str, Any]) -> None:
    raw["hypers"]["num_active_tasks"] = len(raw["tasks"]) - 1


DAMAGES: dict[str, tuple[Any, str]] = {
    "corrupt": (flip_payload_byte, "truncated or corrupt"),
    "truncated": (lambda good: good[: len(good) * 2 // 3], "truncated or corrupt"),
    "header-only": (lambda good: good[: len(admin.MAGIC) + 5], "truncated or corrupt"),
    "empty": (lambda good: b"", "not a curriculum_redis export"),
    "random-bytes": (lambda good: np.random.default_rng(0).bytes(4096), "not a curriculum_redis export"),
    "other-msgpack": (lambda good: msgpack.packb({"tasks": [1, 2, 3]}), "not a curriculum_redis export"),
    "json": (lambda good: json.dumps({"format": "curriculum_redis.state"}).encode(), "not a curriculum_redis export"),
    "framed-foreign-msgpack": (lambda good: framed(msgpack.packb([1, 2, 3])), "msgpack but not a curriculum_redis"),
    "framed-garbage": (lambda good: framed(b"\xc1\xc1\xc1"), "does not hold valid msgpack"),
    "framed-unhashable-key": (lambda good: framed(b"\x81\x91\x01\x01"), "does not hold valid msgpack"),
    "other-schema-version": (other_schema, f"schema_version {SCHEMA_VERSION + 1}"),
    "unknown-field": (lambda good: with_state(good, unknown_field), "invalid state"),
    "negative-count": (lambda good: with_state(good, negative_count), "invalid state"),
    "nan-field": (lambda good: with_state(good, nan_lp), "inconsistent state: task .* has lp=nan"),
    "duplicate-task": (lambda good: with_state(good, duplicate_task), "inconsistent state: task .* appears twice"),
    "label-mismatch": (lambda good: with_state(good, wrong_label), "inconsistent state: task .* has label"),
    "over-capacity": (lambda good: with_state(good, too_many_tasks), "inconsistent state: .* tasks for"),
}


@pytest.fixture(scope="module")
def good_export(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small but complete export (several labels, recorded outcomes), made once for all damages."""
    memory = MemoryStore("src")
    memory.attach(LearningProgressConfig(**HYPERS))
    tasks = [GENERATOR.get_task(i) for i in range(1, 9)]
    memory.create_tasks(tasks)
    memory.record(
        OutcomeBatch(1, 1, [Outcome(t.task_id, t.label_hash, 0.1 * (i % 9)) for i, t in enumerate(tasks * 3)])
    )
    data = admin.encode_state(memory.export_state())
    assert admin.decode_state(data).tasks  # the undamaged file is accepted
    return data


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_or_foreign_file_is_refused_and_changes_nothing(
    damage: str, good_export: bytes, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    make, message = DAMAGES[damage]
    path = tmp_path / f"{damage}.crx"
    path.write_bytes(make(good_export))
    run(make_config(redis_url, "target"), 120)
    before = dump_keys(redis_client, "target")
    assert before

    with pytest.raises(CheckpointError, match=message) as caught:
        admin.import_namespace(redis_client, "target", path, replace=True)
    assert str(path) in str(caught.value)  # the message says which file
    with pytest.raises(CheckpointError, match=message):
        admin.import_namespace(redis_client, "new-one", path)
    assert dump_keys(redis_client, "target") == before
    assert dump_keys(redis_client, "new-one") == {}


def test_load_state_of_a_decoded_state_with_other_hypers_changes_nothing(
    redis_url: str, redis_client: redis.Redis
) -> None:
    run(make_config(redis_url, "src", ema_timescale=0.3), 200)
    state = export_of(redis_client, "src")
    with Curriculum(make_config(redis_url, "dst")) as curriculum:
        run_episodes(curriculum, 200, seed=4)
        before = dump_keys(redis_client, "dst")
        with pytest.raises(HyperparameterMismatchError, match=re.escape("ema_timescale: stored=0.3 given=0.1")):
            curriculum.load_state(state)
        assert dump_keys(redis_client, "dst") == before


# --------------------------------------------------------------------------- hyperparameter mismatches


def test_attaching_with_other_hypers_names_every_differing_field(redis_url: str, redis_client: redis.Redis) -> None:
    run(make_config(redis_url, "hp"), 100)
    before = dump_keys(redis_client, "hp")
    other = make_config(redis_url, "hp", ema_timescale=0.2, num_active_tasks=32, exploration_bonus=0.3)
    with pytest.raises(HyperparameterMismatchError) as caught:
        Curriculum(other).get_task()
    assert caught.value.differences == {
        "ema_timescale": (0.1, 0.2),
        "num_active_tasks": (16, 32),
        "exploration_bonus": (0.1, 0.3),
    }
    message = str(caught.value)
    for line in (
        "ema_timescale: stored=0.1 given=0.2",
        "num_active_tasks: stored=16 given=32",
        "exploration_bonus: stored=0.1 given=0.3",
    ):
        assert line in message
    assert "namespace 'hp'" in message and "on_mismatch='adopt'" in message
    assert dump_keys(redis_client, "hp") == before


def test_adopt_runs_with_the_stored_hypers(redis_url: str, redis_client: redis.Redis) -> None:
    run(make_config(redis_url, "hp"), 100)
    stored = export_of(redis_client, "hp").hypers
    config = make_config(redis_url, "hp", ema_timescale=0.2, num_active_tasks=32).model_copy(
        update={"on_mismatch": "adopt"}
    )
    with Curriculum(config) as curriculum:
        run_episodes(curriculum, 100, seed=1)
        assert curriculum.hypers == stored
        assert len(curriculum.probabilities()) == 16  # the stored pool size, not the given 32
    assert export_of(redis_client, "hp").hypers == stored


def test_allow_safe_accepts_a_sampling_change_and_refuses_an_ema_change(
    redis_url: str, redis_client: redis.Redis
) -> None:
    run(make_config(redis_url, "hp"), 100)
    stored = export_of(redis_client, "hp").hypers
    safe = make_config(redis_url, "hp", exploration_bonus=0.5).model_copy(update={"on_mismatch": "allow_safe"})
    with Curriculum(safe) as curriculum:
        run_episodes(curriculum, 50, seed=1)
        assert curriculum.hypers.exploration_bonus == 0.5
    assert export_of(redis_client, "hp").hypers == stored  # the stored hypers stay as they were

    before = dump_keys(redis_client, "hp")
    unsafe = make_config(redis_url, "hp", exploration_bonus=0.5, ema_timescale=0.2).model_copy(
        update={"on_mismatch": "allow_safe"}
    )
    with pytest.raises(HyperparameterMismatchError) as caught:
        Curriculum(unsafe).get_task()
    assert caught.value.differences == {"ema_timescale": (0.1, 0.2)}  # only the field that may not change
    assert dump_keys(redis_client, "hp") == before


def test_import_into_a_namespace_with_other_hypers_is_refused(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    run(make_config(redis_url, "a", ema_timescale=0.3), 100)
    admin.export_namespace(redis_client, "a", tmp_path / "a.crx")
    run(make_config(redis_url, "b"), 100)
    before = dump_keys(redis_client, "b")
    with pytest.raises(HyperparameterMismatchError, match="ema_timescale"):
        admin.import_namespace(redis_client, "b", tmp_path / "a.crx", replace=True)
    assert dump_keys(redis_client, "b") == before


# --------------------------------------------------------------------------- hostile scores and task ids


def test_hostile_scores_and_task_ids_get_their_defined_outcome(redis_url: str, redis_client: redis.Redis) -> None:
    config = make_config(redis_url, "hostile", score_range=(0.0, 10.0), max_evictions_per_refresh=0)
    with Curriculum(config) as curriculum:
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 5.0)
        curriculum.flush()
        before = dump_keys(redis_client, "hostile")

        for score in (
            float("nan"),
            float("inf"),
            -float("inf"),
            np.float32("nan"),
            "0.5",
            None,
            True,
            False,
            [0.5],
            Decimal("0.5"),
            1 + 2j,
        ):
            with pytest.raises(InvalidScoreError):
                curriculum.update_task_performance(task.task_id, score)  # type: ignore[arg-type]
        for task_id in ("3", 3.0, None, True, np.float64(3)):
            with pytest.raises(ConfigError, match="task_id must be an int"):
                curriculum.update_task_performance(task_id, 0.5)  # type: ignore[arg-type]
            with pytest.raises(ConfigError, match="task_id must be an int"):
                curriculum.report_task_failure(task_id)  # type: ignore[arg-type]
        for task_id in (0, -5, 2**53):
            with pytest.raises(ConfigError, match="task_id must be in"):
                curriculum.update_task_performance(task_id, 0.5)
        curriculum.flush()
        assert curriculum.pending_outcomes == 0
        assert dump_keys(redis_client, "hostile") == before  # nothing refused reached Redis

        # Out of score_range: clipped onto [0, 1], not an error (scoring.normalize_score).
        key = f"{{cr:hostile}}:task:{task.task_id}"
        for raw, stored in ((25.0, b"1"), (-3.0, b"0"), (2.5, b"0.25"), (np.int64(10), b"1"), (np.float32(5), b"0.5")):
            curriculum.update_task_performance(task.task_id, raw)
            curriculum.flush()
            assert redis_client.hget(key, "last_score") == stored
        assert int(redis_client.hget(key, "completions")) == 6

        # A valid id that is not in the pool (e.g. evicted meanwhile): counted, not an error, no key created.
        pool = set(curriculum.probabilities())
        unknown = next(i for i in range(1, 10_000) if i not in pool)
        counters = curriculum.store.counters()
        curriculum.update_task_performance(np.int64(unknown), 0.5)
        curriculum.update_task_performance(unknown, 0.7)
        curriculum.flush()
        after = curriculum.store.counters()
        assert after["num_outcomes_for_evicted_tasks"] == counters["num_outcomes_for_evicted_tasks"] + 2
        assert after["num_completed"] == counters["num_completed"] + 2
        assert not redis_client.exists(f"{{cr:hostile}}:task:{unknown}")


# --------------------------------------------------------------------------- namespace lifecycle


def test_list_namespaces_and_drop_only_ones_own_keys(redis_url: str, redis_client: redis.Redis) -> None:
    for namespace, size, episodes in (("exp", 4, 30), ("exp2", 8, 50), ("other", 2, 0)):
        with Curriculum(make_config(redis_url, namespace, num_active_tasks=size)) as curriculum:
            curriculum.get_task()
            for _ in range(episodes):
                curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    redis_client.set("user:1", "alice")
    redis_client.hset("{cr:exp}-not-a-namespace", "x", "1")

    infos = {info.namespace: info for info in admin.list_namespaces(redis_client)}
    assert set(infos) == {"exp", "exp2", "other"}
    assert (infos["exp"].tasks, infos["exp2"].tasks, infos["other"].tasks) == (4, 8, 2)
    assert (infos["exp"].completions, infos["exp2"].completions, infos["other"].completions) == (30, 50, 0)
    assert all(info.schema_version == SCHEMA_VERSION and info.created_at > 0 for info in infos.values())

    kept = {ns: dump_keys(redis_client, ns) for ns in ("exp2", "other")}
    n_keys = len(dump_keys(redis_client, "exp"))
    assert admin.drop_namespace(redis_client, "exp") == n_keys
    assert dump_keys(redis_client, "exp") == {}
    assert {ns: dump_keys(redis_client, ns) for ns in ("exp2", "other")} == kept
    assert redis_client.get("user:1") == b"alice"
    assert redis_client.exists("{cr:exp}-not-a-namespace")
    assert [info.namespace for info in admin.list_namespaces(redis_client)] == ["exp2", "other"]
    assert admin.drop_namespace(redis_client, "exp") == 0


@pytest.mark.parametrize("bad", ["a*", "a?", "a[b]", "a{b}", "a:b", "a b", "*", "a]", "a\n"])
def test_namespaces_with_glob_or_key_characters_cannot_be_configured(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        CurriculumConfig(task_generator=GENERATOR, namespace=bad)


def test_glob_characters_are_refused_by_every_entry_point_so_scans_match_one_namespace(
    redis_client: redis.Redis,
) -> None:
    for name in ("a*", "a?", "a[b]", "a\\b"):
        with pytest.raises(ConfigError):
            NamespaceKeys(name)
        with pytest.raises(ConfigError):
            admin.drop_namespace(redis_client, name)


# --------------------------------------------------------------------------- TTL (reference bug 3.2)


def namespace_key_ttls(client: redis.Redis, namespace: str) -> dict[str, int]:
    return {k.decode(): client.pttl(k) for k in client.scan_iter(match=NamespaceKeys(namespace).pattern)}


def test_keys_of_a_namespace_with_a_ttl_expire_once_nobody_touches_them(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with Curriculum(make_config(redis_url, "ttl", ttl_s=60.0)) as curriculum:
        run_episodes(curriculum, 400, seed=1)
        assert curriculum.stats()["num_evicted"] > 0
    k = NamespaceKeys("ttl")
    ttls = namespace_key_ttls(redis_client, "ttl")
    for name in (k.meta, k.counters, k.scores, k.labels):
        assert 0 < ttls.pop(name) <= 60_000, name
    tasks = {n: t for n, t in ttls.items() if ":task:" in n}
    labels = {n: t for n, t in ttls.items() if ":label:" in n}
    assert len(tasks) == 16 and labels
    assert all(0 < t <= 60_000 for t in [*tasks.values(), *labels.values()])

    RedisStore(redis_client, "ttl").touch(1.0)
    assert all(0 < t <= 1000 for t in namespace_key_ttls(redis_client, "ttl").values())
    time.sleep(1.5)
    assert namespace_key_ttls(redis_client, "ttl") == {}  # an abandoned run leaks nothing


def test_keys_created_by_an_eviction_after_a_touch_expire_too(redis_url: str, redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, "ttl")
    store.attach(LearningProgressConfig(num_active_tasks=2))
    first, second = Task(1, "old", {}), Task(2, "old", {})
    store.create_tasks([first, second])
    store.touch(30.0)
    store.record(OutcomeBatch(1, 1, [Outcome(1, first.label_hash, 0.5)] * 3))
    replacement = Task(3, "brand-new-label", {})
    assert store.evict_and_replace(Eviction(1, replacement, "low_score", 1, 1.0)) == "evicted"
    assert 0 < redis_client.pttl(store.keys.task(3)) <= 30_000
    assert 0 < redis_client.pttl(store.keys.label(replacement.label_hash)) <= 30_000
    assert not redis_client.exists(store.keys.task(1))


def test_an_abandoned_run_with_a_ttl_leaves_no_key_behind(redis_url: str, redis_client: redis.Redis) -> None:
    config = make_config(redis_url, "abandoned", ttl_s=1.0).model_copy(
        update={"sampler": SamplerConfig(refresh_every_draws=10**6, refresh_every_s=3600)}
    )
    curriculum = Curriculum(config)
    for _ in range(20):
        curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    curriculum.flush()  # the worker then dies without another refresh
    assert all(t > 0 for t in namespace_key_ttls(redis_client, "abandoned").values()), namespace_key_ttls(
        redis_client, "abandoned"
    )
    time.sleep(1.5)
    assert namespace_key_ttls(redis_client, "abandoned") == {}
    curriculum.close()


# --------------------------------------------------------------------------- failing tasks (reference bug 5.2)


def failure_config(url: str, namespace: str) -> CurriculumConfig:
    return make_config(
        url, namespace, num_active_tasks=4, max_consecutive_failures=3, min_presentations_for_eviction=100
    ).model_copy(update={"sampler": SamplerConfig(refresh_every_draws=10**6, refresh_every_s=3600)})


def test_a_task_that_keeps_failing_is_evicted_at_the_next_refresh(redis_url: str, redis_client: redis.Redis) -> None:
    with Curriculum(failure_config(redis_url, "fail")) as curriculum:
        task = curriculum.get_task()
        key = f"{{cr:fail}}:task:{task.task_id}"
        for _ in range(3):
            curriculum.report_task_failure(task.task_id)
        curriculum.flush()
        assert redis_client.hget(key, "consecutive_failures") == b"3"
        assert task.task_id in curriculum.probabilities()

        curriculum.refresh()
        assert not redis_client.exists(key)
        assert task.task_id not in curriculum.probabilities()
        assert len(curriculum.probabilities()) == 4
        stats = curriculum.stats()
        assert stats["num_failures"] == 3 and stats["num_evicted"] == 1 and stats["num_created"] == 5


def test_a_success_in_between_resets_the_failure_streak(redis_url: str, redis_client: redis.Redis) -> None:
    with Curriculum(failure_config(redis_url, "streak")) as curriculum:
        task = curriculum.get_task()
        key = f"{{cr:streak}}:task:{task.task_id}"
        curriculum.report_task_failure(task.task_id)
        curriculum.report_task_failure(task.task_id)
        curriculum.flush()
        assert redis_client.hget(key, "consecutive_failures") == b"2"
        curriculum.update_task_performance(task.task_id, 0.8)
        curriculum.flush()
        assert redis_client.hget(key, "consecutive_failures") == b"0"
        curriculum.report_task_failure(task.task_id)
        curriculum.report_task_failure(task.task_id)
        curriculum.flush()
        curriculum.refresh()
        assert redis_client.hget(key, "consecutive_failures") == b"2"  # 4 failures, never 3 in a row
        assert task.task_id in curriculum.probabilities()
        stats = curriculum.stats()
        assert stats["num_failures"] == 4 and stats["num_evicted"] == 0


# --------------------------------------------------------------------------- epoch counters (reference bug 5.1)


def test_each_reader_gets_its_own_epoch_deltas_and_nobody_resets_the_counters(
    redis_url: str, redis_client: redis.Redis
) -> None:
    config = make_config(
        redis_url, "epoch", num_active_tasks=8, min_presentations_for_eviction=3, eviction_threshold_percentile=0.5
    )
    store = RedisStore(redis_client, "epoch")
    names = ("num_completed", "num_outcomes_for_evicted_tasks", "num_evicted", "num_created", "num_failures")
    with Curriculum(config) as writer, Curriculum(config) as a, Curriculum(config) as b:
        assert a.client_id != b.client_id  # both readers attach now, so their later reads never evict
        seen: list[dict[str, int]] = [store.counters()]

        def work(n: int, seed: int) -> dict[str, int]:
            run_episodes(writer, n, seed)
            seen.append(store.counters())
            return seen[-1]

        def assert_epoch(reading: dict[str, float], newer: dict[str, int], older: dict[str, int]) -> None:
            for name in names:
                assert reading[f"epoch/{name}"] == newer[name] - older[name], name
                assert reading[name] == newer[name], name

        zero = dict.fromkeys(names, 0)
        c1 = work(300, 1)
        assert_epoch(a.stats(), c1, zero)  # a first read covers everything so far
        assert_epoch(b.stats(), c1, zero)
        assert handled(c1) == 300 and c1["num_evicted"] > 0

        c2 = work(200, 2)
        assert_epoch(a.stats(), c2, c1)
        assert_epoch(b.stats(), c2, c1)  # a read just before: b still sees the whole epoch
        assert handled(c2) - handled(c1) == 200 and c2["num_evicted"] > c1["num_evicted"]

        assert_epoch(a.stats(), c2, c2)  # nothing new for a
        c3 = work(100, 3)
        assert_epoch(b.stats(), c3, c2)
        assert_epoch(a.stats(), c3, c2)

        seen.append(store.counters())
        for older, newer in itertools.pairwise(seen):
            assert all(newer[name] >= older[name] for name in older), (older, newer)  # only ever grow
        assert handled(seen[-1]) == 600
