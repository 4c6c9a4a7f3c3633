"""Issue 13 on real servers: attaching checks the eviction policy; ``check_namespace`` (and the CLI's
``check``) finds each lost or altered key, and repairs what the pool's records determine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis
from integrity_workers import pool_config
from redis_servers import ServerFactory

from curriculum_redis import Curriculum, CurriculumConfig, admin
from curriculum_redis.errors import EvictionPolicyError
from curriculum_redis.integrity import check_namespace


def make_config(url: str, namespace: str, **kwargs: object) -> CurriculumConfig:
    return pool_config(url, namespace, **kwargs)


def train(url: str, namespace: str) -> None:
    with Curriculum(make_config(url, namespace)) as curriculum:
        for _ in range(60):
            curriculum.update_task_performance(curriculum.get_task().task_id, 0.5)


@pytest.mark.parametrize(
    ("policy", "ttl_s", "refused"),
    [
        ("allkeys-lru", None, True),
        ("volatile-lru", 60.0, True),
        ("volatile-lru", None, False),
        ("noeviction", 60.0, False),
    ],
)
def test_attaching_refuses_a_server_that_may_evict_the_namespace(
    fresh_redis_factory: ServerFactory, policy: str, ttl_s: float | None, refused: bool
) -> None:
    server = fresh_redis_factory(persistence="none")
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", policy)
    if refused:
        with pytest.raises(EvictionPolicyError, match=policy):
            Curriculum(make_config(server.url, "p", ttl_s=ttl_s)).get_task()
        assert client.keys("*") == []
    else:
        Curriculum(make_config(server.url, "p", ttl_s=ttl_s)).get_task()


def test_a_server_that_may_evict_is_accepted_with_a_warning_when_configured(
    fresh_redis_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = fresh_redis_factory(persistence="none")
    redis.Redis.from_url(server.url).config_set("maxmemory-policy", "allkeys-lru")
    with caplog.at_level(logging.WARNING), Curriculum(make_config(server.url, "w", on_evicting_server="warn")) as c:
        c.get_task()
    assert "allkeys-lru" in caplog.text


def test_a_healthy_namespace_passes_the_check(redis_url: str, redis_client: redis.Redis) -> None:
    train(redis_url, "healthy")
    assert check_namespace(redis_client, "healthy").problems == []


@pytest.mark.parametrize(
    "damage", ["pool_size", "task_hash", "task_slot", "label_active", "label_name", "orphan", "stale_fence"]
)
def test_each_derivable_damage_is_found_and_repaired(redis_url: str, redis_client: redis.Redis, damage: str) -> None:
    ns = f"damage-{damage}"
    train(redis_url, ns)
    task_key = sorted(redis_client.keys(f"{{cr:{ns}}}:task:*"))[0]
    label_key = f"{{cr:{ns}}}:label:{int(redis_client.hget(task_key, 'label_hash') or 0)}".encode()  # a pooled label
    before = redis_client.hgetall(task_key)
    if damage == "pool_size":
        redis_client.hset(f"{{cr:{ns}}}:meta", "pool_size", 64)
    elif damage == "task_hash":
        redis_client.delete(task_key)
    elif damage == "task_slot":
        redis_client.hset(task_key, "slot", 999)
    elif damage == "label_active":
        redis_client.hincrby(label_key, "active", -1)
    elif damage == "label_name":
        redis_client.hdel(f"{{cr:{ns}}}:labels", label_key.decode().rsplit(":", 1)[1])
    elif damage == "stale_fence":  # a drop or import --replace that died before it finished
        redis_client.hset(f"{{cr:{ns}}}:meta", "fence_until_ms", 1)
    else:
        redis_client.hset(f"{{cr:{ns}}}:task:123456789", "slot", 3)
    report = check_namespace(redis_client, ns)
    assert len(report.problems) == 1, report.problems
    repaired = check_namespace(redis_client, ns, repair=True)
    assert repaired.repaired == report.problems
    assert check_namespace(redis_client, ns).problems == []
    if damage in ("task_hash", "task_slot"):
        after = redis_client.hgetall(task_key)
        assert {k: float(v) for k, v in after.items()} == {k: float(v) for k, v in before.items()}
    train(redis_url, ns)  # the namespace works again
    assert check_namespace(redis_client, ns).problems == []


def test_lost_meta_and_counters_are_reported_not_invented(redis_url: str, redis_client: redis.Redis) -> None:
    train(redis_url, "lost")
    redis_client.delete("{cr:lost}:counters")
    assert any("counters" in p for p in check_namespace(redis_client, "lost").problems)
    redis_client.delete("{cr:lost}:meta")
    report = check_namespace(redis_client, "lost", repair=True)
    assert any("meta" in p for p in report.problems) and report.repaired == []


def test_the_cli_check_finds_and_repairs(
    redis_url: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    from curriculum_redis.cli import main

    train(redis_url, "cli-check")
    assert main(["--redis-url", redis_url, "--namespace", "cli-check", "check"]) == 0
    redis_client.hset("{cr:cli-check}:meta", "pool_size", 64)
    redis_client.hset("{cr:cli-check}:task:987654321", "slot", 1)
    assert main(["--redis-url", redis_url, "--namespace", "cli-check", "check"]) == 1
    assert "pool_size is 64" in capsys.readouterr().out
    assert main(["--redis-url", redis_url, "--namespace", "cli-check", "check", "--repair", "--json"]) == 0
    assert main(["--redis-url", redis_url, "--namespace", "cli-check", "check"]) == 0
    assert admin.check_namespace(redis_client, "cli-check").ok


@pytest.mark.parametrize("damage", ["deleted", "partial"])
def test_readers_name_a_lost_task_hash_and_the_repair(
    redis_url: str, redis_client: redis.Redis, damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from curriculum_redis.cli import main

    ns = f"readers-{damage}"
    train(redis_url, ns)
    key = sorted(redis_client.keys(f"{{cr:{ns}}}:task:*"))[0]
    redis_client.delete(key)
    if damage == "partial":
        redis_client.hset(key, "completions", 3)
    for command in (["inspect"], ["export", str(tmp_path / "x.crx")]):
        assert main(["--redis-url", redis_url, "--namespace", ns, *command]) == 1
        assert "check --repair" in capsys.readouterr().err
    assert main(["--redis-url", redis_url, "--namespace", ns, "check", "--repair"]) == 0
    assert main(["--redis-url", redis_url, "--namespace", ns, "inspect"]) == 0
