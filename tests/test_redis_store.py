"""The Redis store and its Lua scripts, on a real redis-server (never fakeredis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    SamplerConfig,
    ScriptError,
    Task,
)
from curriculum_redis.algorithms import get_algorithm
from curriculum_redis.algorithms.learning_progress import TaskState, apply_outcome
from curriculum_redis.labels import label_hash
from curriculum_redis.store.base import Eviction, Outcome, OutcomeBatch
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.scripts import lua_dir, record_source, script_sources

GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")
LP_FIELDS = get_algorithm("learning_progress").snapshot_fields()


def make_config(url: str, namespace: str = "t", **algorithm: Any) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(**{"num_active_tasks": 8, **algorithm}),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=16),
        sampler=SamplerConfig(refresh_every_draws=50),
    )


def attached_store(url: str, namespace: str = "t", **algorithm: Any) -> RedisStore:
    store = RedisStore.from_url(url, namespace)
    store.attach(LearningProgressConfig(**{"num_active_tasks": 8, **algorithm}))
    return store


def dump_namespace(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    """Every key of the namespace with its full value, for before/after comparisons."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match="{cr:" + namespace + "}:*"):
        kind = client.type(key)
        out[key] = client.hgetall(key) if kind == b"hash" else client.get(key)
    return out


def test_every_script_states_its_contract_and_takes_keys_only_from_keys() -> None:
    sources = script_sources()
    assert {"attach", "create_tasks", "record_outcomes", "evict_and_replace", "read_snapshot", "read_task"} <= set(
        sources
    )
    for name, source in sources.items():
        head = "\n".join(source.splitlines()[:6])
        assert "KEYS" in head and "ARGV" in head and "Returns" in source, name
        # Key names are never built inside Lua (that would break Redis Cluster): no key fragment in code.
        code = "\n".join(line.split("--")[0] for line in source.splitlines())
        for fragment in ("{cr", ":task:", ":label:", ":meta", ":pool", ":scores"):
            assert fragment not in code, (name, fragment)


def test_lua_dir_is_found_from_a_source_checkout() -> None:
    assert (lua_dir() / "record_outcomes.lua").is_file()


def test_task_hash_reads_clearly_with_plain_redis_commands(redis_url: str, redis_client: redis.Redis) -> None:
    with Curriculum(make_config(redis_url, "readable")) as curriculum:
        task = curriculum.get_task()
        for score in (0.25, 0.5, 1.0):
            curriculum.update_task_performance(task.task_id, score)
        curriculum.flush()
    fields = redis_client.hgetall(f"{{cr:readable}}:task:{task.task_id}")
    assert fields[b"completions"] == b"3"
    assert fields[b"score_sum"] == b"1.75"
    assert fields[b"last_score"] == b"1"
    assert fields[b"label_hash"] == str(label_hash(task.label)).encode()
    assert set(fields) >= {b"reward_ema", b"success_ema", b"p_fast", b"p_slow", b"p_true", b"lp", b"baseline"}
    assert redis_client.hget("{cr:readable}:labels", str(label_hash(task.label))) == task.label.encode()
    assert redis_client.hget(f"{{cr:readable}}:label:{label_hash(task.label)}", "label") == task.label.encode()
    meta = redis_client.hgetall("{cr:readable}:meta")
    assert meta[b"capacity"] == b"8" and meta[b"scorer"] == b"bidirectional"
    assert b"ema_timescale" in meta and b'"num_active_tasks":8' in meta[b"hypers"]
    counters = redis_client.hgetall("{cr:readable}:counters")
    assert counters[b"num_completed"] == b"3" and counters[b"num_created"] == b"8"
    assert meta[b"pool_size"] == b"8"


def test_lua_arithmetic_equals_python_reference_bit_for_bit(redis_url: str) -> None:
    rng = np.random.default_rng(7)
    for bidirectional, baseline in ((True, None), (True, 0.2), (False, None)):
        hypers: dict[str, Any] = {"use_bidirectional": bidirectional, "random_baseline": baseline,
                                  "early_progress_amplification": 0.3}
        redis_store = attached_store(redis_url, f"arith-{bidirectional}-{baseline}", **hypers)
        memory = MemoryStore("m")
        memory.attach(LearningProgressConfig(num_active_tasks=8, **hypers))
        tasks = [GENERATOR.get_task(i) for i in range(1, 9)]
        assert redis_store.create_tasks(tasks) == memory.create_tasks(tasks)
        for seq in range(1, 30):
            chosen = rng.choice(8, size=20)
            outcomes = [
                Outcome(tasks[i].task_id, tasks[i].label_hash, float(rng.random()), failed=bool(rng.random() < 0.05))
                for i in chosen
            ]
            batch = OutcomeBatch(1, seq, outcomes, {tasks[0].label_hash: 3})
            assert redis_store.record(batch) == memory.record(batch)
        for task in tasks:
            assert redis_store.read_task(task.task_id) == memory.read_task(task.task_id)
        np.testing.assert_array_equal(redis_store.snapshot().records, memory.snapshot().records)
        assert redis_store.counters() == memory.counters()
        mine, theirs = redis_store.label_stats(), memory.label_stats()
        for h in theirs:
            assert mine[h].model_dump(exclude={"score_sum"}) == theirs[h].model_dump(exclude={"score_sum"})
            assert mine[h].score_sum == pytest.approx(theirs[h].score_sum, rel=1e-12)


def test_a_batch_sent_twice_is_applied_once(redis_url: str) -> None:
    store = attached_store(redis_url)
    task = GENERATOR.get_task(5)
    store.create_tasks([task])
    batch = OutcomeBatch(42, 1, [Outcome(5, task.label_hash, 0.5)] * 3)
    assert store.record(batch).applied
    assert not store.record(batch).applied
    older = OutcomeBatch(42, 1, [Outcome(5, task.label_hash, 0.9)])
    assert not store.record(older).applied
    record = store.read_task(5)
    assert record is not None and record.completions == 3
    assert store.counters()["num_duplicate_batches"] == 2


def test_a_batch_resent_after_a_lost_reply_is_applied_once(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reply of the first EVALSHA is lost: redis-py retries the command, the script ignores the copy."""
    config = make_config(redis_url, "lost-reply", num_active_tasks=4)
    curriculum = Curriculum(config.model_copy(update={"buffer": BufferConfig(batch_size=1000)}))
    task = curriculum.get_task()
    for _ in range(10):
        curriculum.update_task_performance(task.task_id, 0.5)
    sha = RedisStore.from_url(redis_url, "x").client.script_load(record_source("learning_progress"))
    original = redis.connection.Connection.read_response
    state = {"lost": 0}

    def lose_first_reply(self: redis.connection.Connection, *args: Any, **kwargs: Any) -> Any:
        response = original(self, *args, **kwargs)
        if state["lost"] == 0 and state.get("armed") and isinstance(response, list):  # the script's reply
            state["lost"] = 1
            self.disconnect()
            raise redis.exceptions.ConnectionError("reply lost (test)")
        return response

    original_send = redis.connection.Connection.send_command

    def arm_on_record(self: redis.connection.Connection, *args: Any, **kwargs: Any) -> Any:
        if args[:2] == ("EVALSHA", sha):
            state["armed"] = True
        return original_send(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "read_response", lose_first_reply)
    monkeypatch.setattr(redis.connection.Connection, "send_command", arm_on_record)
    curriculum.flush()
    monkeypatch.undo()
    assert state["lost"] == 1
    counters = curriculum.store.counters()
    record = curriculum.store.read_task(task.task_id)
    curriculum.close()
    assert record is not None and record.completions == 10
    assert counters["num_completed"] == 10
    assert counters["num_duplicate_batches"] == 1


def test_script_errors_before_any_write(redis_url: str, redis_client: redis.Redis) -> None:
    store = attached_store(redis_url, "strict")
    task = GENERATOR.get_task(3)
    store.create_tasks([task])
    store.record(OutcomeBatch(1, 1, [Outcome(3, task.label_hash, 0.5)]))
    before = dump_namespace(redis_client, "strict")
    bad_batches = [
        OutcomeBatch(1, 2, [Outcome(3, task.label_hash, 0.5), Outcome(3, task.label_hash, 1.5)]),
        OutcomeBatch(1, 2, [Outcome(3, task.label_hash, 0.5), Outcome(3, task.label_hash, float("nan"))]),
        OutcomeBatch(1, 2, [Outcome(3, task.label_hash + 1, 0.5)]),
    ]
    for batch in bad_batches:
        with pytest.raises(ScriptError):
            store.record(batch)
    k = store.keys
    with pytest.raises(ScriptError, match="CR_ARGS"):
        store._run("record_outcomes", [k.meta, k.counters, k.scores, k.clients], [1, 2, 1, 0])
    with pytest.raises(ScriptError, match="CR_ARGS"):
        store._run("create_tasks", [k.meta, k.counters, k.scores, k.labels, "a", "b"], [1, -4, 1, "x"])
    assert dump_namespace(redis_client, "strict") == before


def test_capacity_is_never_exceeded_and_existing_ids_are_skipped(redis_url: str) -> None:
    store = attached_store(redis_url, num_active_tasks=5)
    assert store.create_tasks([GENERATOR.get_task(i) for i in (1, 2, 3)]) == [1, 2, 3]
    assert store.create_tasks([GENERATOR.get_task(i) for i in (3, 4, 5, 6, 7)]) == [4, 5]
    snap = store.snapshot()
    assert sorted(snap.task_ids.tolist()) == [1, 2, 3, 4, 5]
    assert store.counters()["num_created"] == 5


def test_replacement_task_inherits_nothing_from_the_evicted_one(redis_url: str, redis_client: redis.Redis) -> None:
    """Reference bug 2.1: a freed slot kept its label hash. Here the victim's hash is deleted whole."""
    store = attached_store(redis_url, "evict")
    victim = Task(11, "old-label", {})
    store.create_tasks([victim])
    store.record(OutcomeBatch(1, 1, [Outcome(11, victim.label_hash, 0.9)] * 6))
    replacement = Task(12, "new-label", {})
    assert store.evict_and_replace(Eviction(11, replacement, "low_score", 5, 1.0)) == "evicted"
    assert not redis_client.exists("{cr:t}:task:11")
    record = store.read_task(12)
    assert record is not None
    assert record.label == "new-label" and record.label_hash == label_hash("new-label")
    assert record.completions == 0 and record.score_sum == 0 and record.p_fast == 0 and record.lp == 0
    assert record.slot == 0
    (row,) = store.snapshot().records.tolist()
    assert dict(zip(LP_FIELDS, row, strict=True)) == {
        **dict.fromkeys(LP_FIELDS, 0.0), "task_id": 12, "label_hash": label_hash("new-label")
    }
    stats = store.label_stats()
    assert stats[victim.label_hash].evicted == 1 and stats[victim.label_hash].active == 0
    assert stats[replacement.label_hash].created == 1 and stats[replacement.label_hash].active == 1
    assert store.labels()[victim.label_hash] == "old-label"  # label strings are never lost


def test_eviction_is_revalidated_on_the_server(redis_url: str) -> None:
    store = attached_store(redis_url, "reval")
    task = Task(21, "a", {})
    store.create_tasks([task])
    store.record(OutcomeBatch(1, 1, [Outcome(21, task.label_hash, 0.5)] * 2))
    assert store.evict_and_replace(Eviction(21, Task(22, "b", {}), "low_score", 5, 1.0)) == "victim_not_evictable"
    assert store.evict_and_replace(Eviction(21, Task(22, "b", {}), "failures", min_failures=1)) == (
        "victim_not_evictable"
    )
    assert store.evict_and_replace(Eviction(99, Task(22, "b", {}), "low_score", 0, 1.0)) == "victim_gone"
    store.create_tasks([Task(23, "c", {})])
    assert store.evict_and_replace(Eviction(21, Task(23, "c", {}), "low_score", 0, 1.0)) == "replacement_exists"
    assert sorted(store.snapshot().task_ids.tolist()) == [21, 23]


def test_outcomes_for_an_evicted_task_count_everywhere_but_in_the_task(redis_url: str) -> None:
    store = attached_store(redis_url, "stale")
    task = Task(31, "a", {})
    store.create_tasks([task])
    store.evict_and_replace(Eviction(31, Task(32, "a", {}), "low_score", 0, 1.0))
    result = store.record(OutcomeBatch(1, 1, [Outcome(31, task.label_hash, 0.5)] * 4))
    assert result.applied and result.recorded == 4 and result.for_evicted_tasks == 4
    counters = store.counters()
    assert counters["num_outcomes_for_evicted_tasks"] == 4 and counters["num_completed"] == 4
    assert store.label_stats()[task.label_hash].completions == 4
    assert store.read_task(31) is None


def test_script_flush_in_the_middle_of_a_run_is_survived(redis_url: str, redis_client: redis.Redis) -> None:
    config = make_config(redis_url, "flush", num_active_tasks=16).model_copy(
        update={"buffer": BufferConfig(batch_size=8)}
    )
    with Curriculum(config) as curriculum:
        for i in range(400):
            if i in (100, 250):
                redis_client.script_flush()
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, 0.5)
    counters = RedisStore.from_url(redis_url, "flush").counters()
    assert counters["num_completed"] == 400


def test_a_redis_restart_in_the_middle_of_a_run_is_survived(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="aof")
    config = make_config(server.url, "restart", num_active_tasks=8, max_evictions_per_refresh=0).model_copy(
        update={"buffer": BufferConfig(batch_size=4, max_age_s=0.0)}
    )
    with Curriculum(config) as curriculum:
        for i in range(300):
            if i == 150:
                server.stop()  # graceful: the AOF is flushed
                server.restart()
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, 0.25)
    counters = RedisStore.from_url(server.url, "restart").counters()
    assert counters["num_completed"] == 300
    assert sum(int(x) for x in RedisStore.from_url(server.url, "restart").snapshot().column("completions")) == 300


def test_a_decoding_client_is_accepted(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStore(client, "decoded")
    store.attach(LearningProgressConfig(num_active_tasks=2))
    store.create_tasks([Task(1, "x", {}), Task(2, "y", {})])
    assert store.snapshot().size == 2 and store.labels() == {label_hash("x"): "x", label_hash("y"): "y"}


def test_a_store_pickles_without_its_connection(redis_url: str) -> None:
    import pickle

    store = attached_store(redis_url, "pickled")
    store.create_tasks([Task(1, "x", {})])
    clone = pickle.loads(pickle.dumps(store))
    assert clone.snapshot().task_ids.tolist() == [1]
    from_client = RedisStore(redis.Redis.from_url(redis_url), "pickled")
    assert pickle.loads(pickle.dumps(from_client)).snapshot().task_ids.tolist() == [1]


def test_get_state_and_load_state_round_trip_through_redis(redis_url: str) -> None:
    config = make_config(redis_url, "state-a", max_evictions_per_refresh=0)
    with Curriculum(config) as source:
        for _ in range(300):
            task = source.get_task()
            source.update_task_performance(task.task_id, 0.7)
        state = source.get_state()
    with Curriculum(make_config(redis_url, "state-b", max_evictions_per_refresh=0)) as target:
        target.load_state(state)
        copy = target.get_state()
    assert copy.tasks == state.tasks
    assert copy.labels == state.labels and copy.label_stats == state.label_stats
    assert copy.counters == state.counters and copy.hypers == state.hypers


def test_replay_of_a_task_equals_its_stored_emas(redis_url: str) -> None:
    cfg = LearningProgressConfig(num_active_tasks=1)
    store = attached_store(redis_url, "replay", num_active_tasks=1)
    task = Task(5, "z", {})
    store.create_tasks([task])
    scores = [0.0, 0.0, 0.3, 0.1, 0.9, 1.0, 0.4]
    for seq, s in enumerate(scores, start=1):
        store.record(OutcomeBatch(9, seq, [Outcome(5, task.label_hash, s)]))
    state = TaskState(label_hash=task.label_hash)
    for s in scores:
        state = apply_outcome(state, s, cfg)
    record = store.read_task(5)
    assert record is not None
    assert record.p_fast == state.p_fast and record.p_slow == state.p_slow and record.lp == state.lp
    assert record.baseline == 0.0  # first score 0.0, not a sentinel that re-initialises later


def test_wheel_carries_the_lua_scripts(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[1]
    # hatchling is declared in the dev extra, so this runs without pip's isolated build environment.
    build = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=root, capture_output=True, text=True,
    )
    assert build.returncode == 0, f"hatchling build failed:\n{build.stdout}\n{build.stderr}"
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in lua_dir().glob("*.lua"):  # scripts, algorithm updates and includes
        assert f"curriculum_redis/lua/{path.name}" in names


def test_a_unix_socket_url_works(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="none", unixsocket=True)
    assert server.unix_url.startswith("unix://")
    with Curriculum(make_config(server.unix_url, "unix")) as curriculum:
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, 0.5)
        curriculum.flush()
        assert curriculum.stats()["num_completed"] == 1
