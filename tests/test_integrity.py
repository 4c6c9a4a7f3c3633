"""Issue 13 on real Redis servers: refused batches never block, generators are compared when attaching."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import redis
from integrity_workers import run_worker

from curriculum_redis import BufferConfig, Curriculum, CurriculumConfig, LearningProgressConfig, SamplerConfig, admin
from curriculum_redis.cli import main
from curriculum_redis.conditions import ConditionError, compile_condition
from curriculum_redis.errors import ConfigError, GeneratorMismatchError, InvalidScoreError, ScriptError
from curriculum_redis.store.base import Eviction, Outcome
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.tasks import BucketedTaskGenerator

SPAWN = multiprocessing.get_context("spawn")


def make_config(url: str, namespace: str, label: str = "grid", **kwargs: Any) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label=label),
        algorithm=LearningProgressConfig(num_active_tasks=16),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=8),
        sampler=SamplerConfig(refresh_every_draws=50),
        **kwargs,
    )


@pytest.mark.slow
def test_a_second_process_with_another_generator_is_refused_when_attaching(redis_url: str) -> None:
    first = make_config(redis_url, "gen-identity", label="grid").model_dump_json()
    other = make_config(redis_url, "gen-identity", label="maze").model_dump_json()
    with SPAWN.Pool(2) as pool:
        assert pool.apply(run_worker, (first, 200)) == "ok"
        results = [pool.apply_async(run_worker, (cfg, 200)) for cfg in (first, other)]
        same, different = (r.get(timeout=120) for r in results)
    assert same == "ok"
    assert different.startswith("GeneratorMismatchError")
    assert "maze" in different and "fingerprint" in different


def test_the_same_generator_attaches_again(redis_url: str) -> None:
    with Curriculum(make_config(redis_url, "gen-same")) as a, Curriculum(make_config(redis_url, "gen-same")) as b:
        a.get_task()
        b.get_task()
    with pytest.raises(GeneratorMismatchError):
        Curriculum(make_config(redis_url, "gen-same", label="other")).get_task()


def test_a_refused_batch_is_dropped_counted_and_blocks_no_later_batch(
    redis_url: str, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    curriculum = Curriculum(make_config(redis_url, "refused"))
    task = curriculum.get_task()
    bad = Outcome(task.task_id, task.label_hash ^ 1, 0.5)  # another label hash: the server says CR_LABEL
    for _ in range(3):
        curriculum._buffer.add(bad)
    curriculum._seal()
    with caplog.at_level(logging.ERROR):
        for _ in range(16):
            curriculum.update_task_performance(task.task_id, 0.25)
        curriculum.flush()
    assert curriculum.refused == {"CR_LABEL": 3}
    assert curriculum.refused_outcomes == 3
    assert "CR_LABEL" in caplog.text and "refused a batch of 3 outcomes" in caplog.text
    assert int(redis_client.hget("{cr:refused}:counters", "num_completed") or 0) == 16
    curriculum._buffer.add(bad)
    curriculum._seal()
    curriculum._buffer.add(Outcome(task.task_id, task.label_hash, 0.5))
    with pytest.raises(ScriptError, match="CR_LABEL"):  # an explicit flush says so, after writing the rest
        curriculum.flush()
    assert int(redis_client.hget("{cr:refused}:counters", "num_completed") or 0) == 17
    curriculum._buffer.add(bad)
    curriculum.close()  # does not raise for it
    assert curriculum.refused == {"CR_LABEL": 5}


# -- namespace isolation ---------------------------------------------------------------------------

FOREIGN = ["{cr:a}:zzz}:meta", "{cr:a}:zzz}:task:1", "{cr:a}:zzz}:label:7", "{cr:a}:zzz}:counters"]


@pytest.mark.parametrize("name", ["a}:zzz", "a{b", "a:b", "a*", "", "x" * 129, "a b", "a\udc80", "a\n"])
def test_every_entry_point_refuses_a_namespace_that_could_reach_foreign_keys(
    name: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    before = sorted(redis_client.keys("*"))
    with pytest.raises(ConfigError):
        NamespaceKeys(name)
    with pytest.raises(ConfigError):
        RedisStore(redis_client, name)
    with pytest.raises(ConfigError):
        admin.drop_namespace(redis_client, name)
    with pytest.raises(ValueError):
        make_config(redis_url, name)
    with pytest.raises(ConfigError):
        admin.import_namespace(redis_client, name, tmp_path / "missing.crx", replace=True)
    if name:  # argparse refuses an empty one itself
        assert main(["--redis-url", redis_url, "drop", name, "--yes"]) == 2
    assert sorted(redis_client.keys("*")) == before


def test_drop_and_import_replace_never_delete_a_foreign_key(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    for key in FOREIGN:  # keys of a name no entry point accepts now, written by an older version or by hand
        redis_client.hset(key, "x", "1")
    with Curriculum(make_config(redis_url, "a")) as curriculum:
        for _ in range(20):
            curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    path = tmp_path / "a.crx"
    admin.export_namespace(redis_client, "a", path)
    assert "a}:zzz" not in {info.namespace for info in admin.list_namespaces(redis_client)}
    admin.import_namespace(redis_client, "a", path, replace=True)
    assert all(redis_client.exists(key) for key in FOREIGN)
    assert main(["--redis-url", redis_url, "drop", "a", "--yes"]) == 0
    assert all(redis_client.exists(key) for key in FOREIGN)
    assert not redis_client.keys("{cr:a}:[^z]*")


# -- the library's own errors, before anything is written -----------------------------------------


def test_a_score_beyond_a_double_is_an_invalid_score(redis_url: str) -> None:
    with Curriculum(make_config(redis_url, "huge-score")) as curriculum:
        task = curriculum.get_task()
        with pytest.raises(InvalidScoreError):
            curriculum.update_task_performance(task.task_id, 10**400)


def test_a_score_range_whose_width_overflows_is_refused() -> None:
    with pytest.raises(ValueError, match="finite hi - lo"):
        LearningProgressConfig(score_range=(-1e308, 1e308))


def test_a_label_with_a_lone_surrogate_is_refused_before_anything_is_written(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with pytest.raises(ConfigError, match="not valid Unicode"):
        Curriculum(make_config(redis_url, "surrogate", label="bad\udc80")).get_task()
    assert redis_client.keys("{cr:surrogate}:*") == []


@pytest.mark.parametrize("condition", ["episodes>²", "success_rate>0.5 and episodes>٣", "episodes>²0"])
def test_a_stop_condition_with_unicode_digits_is_a_condition_error(condition: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(condition)


# -- structural checks before the first write ------------------------------------------------------


def trained(redis_url: str, namespace: str, episodes: int = 40) -> Curriculum:
    curriculum = Curriculum(make_config(redis_url, namespace))
    for _ in range(episodes):
        curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    curriculum.flush()
    return curriculum


def dump(client: redis.Redis, namespace: str) -> dict[bytes, bytes]:
    return {key: client.dump(key) or b"" for key in client.keys(f"{{cr:{namespace}}}:*")}


def test_attach_refuses_a_namespace_whose_meta_was_lost(redis_url: str, redis_client: redis.Redis) -> None:
    trained(redis_url, "no-meta").close()
    redis_client.delete("{cr:no-meta}:meta")
    before = dump(redis_client, "no-meta")
    with pytest.raises(ScriptError, match="CR_CORRUPT"):
        Curriculum(make_config(redis_url, "no-meta")).get_task()
    assert dump(redis_client, "no-meta") == before  # the scores are not wiped


def test_a_batch_for_a_task_whose_hash_was_lost_is_refused_with_nothing_written(
    redis_url: str, redis_client: redis.Redis
) -> None:
    curriculum = trained(redis_url, "no-task")
    task = curriculum.get_task()
    redis_client.delete(f"{{cr:no-task}}:task:{task.task_id}")
    before = dump(redis_client, "no-task")
    curriculum.update_task_performance(task.task_id, 0.5)
    with pytest.raises(ScriptError, match="CR_CORRUPT"):
        curriculum.flush()
    assert dump(redis_client, "no-task") == before
    curriculum.close()


def test_a_counter_about_to_overflow_refuses_the_batch_before_any_write(
    redis_url: str, redis_client: redis.Redis
) -> None:
    curriculum = trained(redis_url, "overflow")
    redis_client.hset("{cr:overflow}:counters", "num_completed", 2**63 - 1)
    before = dump(redis_client, "overflow")
    curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)
    with pytest.raises(ScriptError, match="CR_OVERFLOW"):
        curriculum.flush()
    assert dump(redis_client, "overflow") == before
    curriculum.close()


def contents(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    """Each key's value (DUMP bytes of a hash change with its encoding, its contents do not)."""
    out: dict[bytes, Any] = {}
    for key in client.keys(f"{{cr:{namespace}}}:*"):
        kind = client.type(key)
        out[key] = client.hgetall(key) if kind == b"hash" else client.get(key) if kind == b"string" else kind
    return out


def store_of(redis_url: str, namespace: str) -> RedisStore:
    store = RedisStore.from_url(redis_url, namespace)
    store.attach(make_config(redis_url, namespace).algorithm)
    return store


@pytest.mark.parametrize(
    ("key", "field", "value", "error"),
    [
        ("counters", "num_evicted", 2**63 - 1, "CR_OVERFLOW"),
        ("counters", "num_created", 2**53, "CR_OVERFLOW"),
        ("meta", "pool_version", 2**63 - 1, "CR_OVERFLOW"),
        ("victim_label", "active", -(2**63), "CR_OVERFLOW"),
        ("fresh_label", "created", "many", "CR_CORRUPT"),
    ],
)
def test_an_eviction_whose_counts_would_break_is_refused_before_any_write(
    redis_url: str, redis_client: redis.Redis, key: str, field: str, value: Any, error: str
) -> None:
    curriculum = trained(redis_url, f"evict-{key}-{field}")
    namespace = curriculum.config.namespace
    store = store_of(redis_url, namespace)
    generator = curriculum.config.task_generator
    assert generator is not None
    victim = curriculum.get_task()
    fresh = generator.get_task(10**9)
    keys = NamespaceKeys(namespace)
    target = {"counters": keys.counters, "meta": keys.meta, "victim_label": keys.label(victim.label_hash),
              "fresh_label": keys.label(fresh.label_hash)}[key]  # fmt: skip
    redis_client.hset(target, field, value)
    before = contents(redis_client, namespace)
    with pytest.raises(ScriptError, match=error):
        store.evict_and_replace(Eviction(victim.task_id, fresh, min_presentations=0))
    assert contents(redis_client, namespace) == before
    store.close()
    curriculum.close()


def test_a_victim_without_its_slot_is_corruption_not_a_lua_error(redis_url: str, redis_client: redis.Redis) -> None:
    curriculum = trained(redis_url, "evict-no-slot")
    store = store_of(redis_url, "evict-no-slot")
    victim = curriculum.get_task()
    redis_client.hdel(NamespaceKeys("evict-no-slot").task(victim.task_id), "slot")
    before = contents(redis_client, "evict-no-slot")
    assert curriculum.config.task_generator is not None
    with pytest.raises(ScriptError, match=r"CR_CORRUPT .* has no slot"):
        store.evict_and_replace(
            Eviction(victim.task_id, curriculum.config.task_generator.get_task(10**9), min_presentations=0)
        )
    assert contents(redis_client, "evict-no-slot") == before
    store.close()
    curriculum.close()


@pytest.mark.parametrize(
    ("key", "field", "value", "error"),
    [
        ("counters", "num_created", 2**63 - 1, "CR_OVERFLOW"),
        ("meta", "pool_version", 2**63 - 1, "CR_OVERFLOW"),
        ("label", "active", 2**62, "CR_OVERFLOW"),
        ("label", "created", "1.5", "CR_CORRUPT"),
    ],
)
def test_a_creation_whose_counts_would_break_is_refused_before_any_write(
    redis_url: str, redis_client: redis.Redis, key: str, field: str, value: Any, error: str
) -> None:
    namespace = f"create-{key}-{field}"
    store = store_of(redis_url, namespace)  # attached, no task yet
    generator = make_config(redis_url, namespace).task_generator
    assert generator is not None
    tasks = [generator.get_task(i) for i in range(1, 9)]
    keys = NamespaceKeys(namespace)
    target = {"counters": keys.counters, "meta": keys.meta, "label": keys.label(tasks[3].label_hash)}[key]
    redis_client.hset(target, field, value)
    before = contents(redis_client, namespace)
    with pytest.raises(ScriptError, match=error):
        store.create_tasks(tasks)
    assert contents(redis_client, namespace) == before
    store.close()
