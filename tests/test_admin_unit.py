"""Fast unit tests of the namespace lifecycle on fakeredis (plain commands only: every Lua script is tested on
a real redis-server elsewhere, since fakeredis's Lua lacks the ``struct`` library the scripts use)."""

from __future__ import annotations

import fakeredis

from curriculum_redis.admin import drop_namespace, list_namespaces
from curriculum_redis.store.keys import NamespaceKeys


def fill(client: fakeredis.FakeRedis, namespace: str, tasks: int) -> None:
    keys = NamespaceKeys(namespace)
    client.hset(keys.meta, mapping={"schema_version": 2, "created_at": "1.5", "pool_size": tasks, "hypers": "{}"})
    client.hset(keys.counters, mapping={"num_completed": 7 * tasks})
    for task_id in range(1, tasks + 1):
        client.hset(keys.task(task_id), mapping={"completions": 7})


def test_namespaces_are_listed_with_their_counts() -> None:
    client = fakeredis.FakeRedis()
    fill(client, "exp1", 3)
    fill(client, "exp2", 5)
    client.hset("{cr:stages-only}:stage:config", "stages", "[]")
    infos = {info.namespace: info for info in list_namespaces(client)}
    assert set(infos) == {"exp1", "exp2", "stages-only"}
    assert (infos["exp1"].tasks, infos["exp1"].completions) == (3, 21)
    assert (infos["exp2"].tasks, infos["exp2"].completions) == (5, 35)
    assert infos["exp1"].schema_version == 2 and infos["exp1"].created_at == 1.5


def test_drop_deletes_only_the_namespaces_own_keys() -> None:
    client = fakeredis.FakeRedis()
    fill(client, "exp1", 3)
    fill(client, "exp10", 2)  # a namespace whose name starts like the dropped one
    client.set("user:1", "keep me")
    assert drop_namespace(client, "exp1") == 5
    assert not list(client.scan_iter(match="{cr:exp1}:*"))
    assert len(list(client.scan_iter(match="{cr:exp10}:*"))) == 4
    assert client.get("user:1") == b"keep me"
