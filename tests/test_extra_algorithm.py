"""An algorithm defined outside the package (tests/extra_algorithm/: a config class, a module, a Lua file)
runs everywhere the built-in ones do, and adding it touched no other module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import redis
from extra_algorithm.constant import Constant, ConstantConfig

import curriculum_redis
from curriculum_redis import BucketedTaskGenerator, BufferConfig, Curriculum, CurriculumConfig, SamplerConfig, Task
from curriculum_redis.admin import export_namespace, import_namespace
from curriculum_redis.algorithms import algorithm_of, parse_config, registry
from curriculum_redis.cli import main
from curriculum_redis.labels import label_hash
from curriculum_redis.state import CurriculumState
from curriculum_redis.store.base import Outcome, OutcomeBatch
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.store.redis import RedisStore

GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")
CONSTANT = ConstantConfig(num_active_tasks=8, value=0.25)
PACKAGE = Path(curriculum_redis.__file__).parent
ROOT = PACKAGE.parent


def make_config(url: str | None, namespace: str) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR, algorithm=CONSTANT, redis_url=url, namespace=namespace,
        buffer=BufferConfig(batch_size=8), sampler=SamplerConfig(refresh_every_draws=40),
    )  # fmt: skip


def play(curriculum: Curriculum, episodes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, float(rng.random()))
    curriculum.flush()


def test_the_extra_algorithm_is_registered_by_its_module() -> None:
    assert isinstance(registry()["constant"], Constant)
    assert algorithm_of(CONSTANT).stored_fields() == ("last_outcome", "shifted")
    assert parse_config({"algorithm": "constant", "value": 2.0}) == ConstantConfig(value=2.0)


def test_extra_algorithm_runs_on_memory_and_redis_bit_for_bit(redis_url: str) -> None:
    memory, red = MemoryStore("extra"), RedisStore.from_url(redis_url, "extra-bits")
    tasks = [Task(i, f"l{i % 3}", {}) for i in range(1, 9)]
    rng = np.random.default_rng(5)
    batches = [
        OutcomeBatch(1, seq, [Outcome(t, label_hash(f"l{t % 3}"), float(rng.random())) for t in
                              rng.integers(1, 9, size=6).tolist()], {})
        for seq in range(1, 40)
    ]  # fmt: skip
    for store in (memory, red):
        store.attach(CONSTANT)
        store.create_tasks(tasks)
        for batch in batches:
            store.record(batch)
    mem_snap, red_snap = memory.snapshot(), red.snapshot()
    assert mem_snap.records.tobytes() == red_snap.records.tobytes()
    np.testing.assert_array_equal(mem_snap.column("shifted"), mem_snap.column("last_outcome") + 0.25)
    for task in tasks:
        assert memory.read_task(task.task_id) == red.read_task(task.task_id)
    assert memory.label_stats() == red.label_stats()
    red.close()
    for url in (None, redis_url):
        with Curriculum(make_config(url, "extra-run")) as curriculum:
            play(curriculum, 200)
            assert curriculum.stats()["num_active_tasks"] == 8


def test_extra_algorithm_config_round_trips_json_yaml(tmp_path: Path) -> None:
    config = make_config(None, "extra")
    assert CurriculumConfig.model_validate_json(config.model_dump_json()) == config
    sparse = config.model_dump(mode="json", exclude_defaults=True)
    assert sparse["algorithm"] == {"algorithm": "constant", "num_active_tasks": 8, "value": 0.25}
    assert CurriculumConfig.model_validate(sparse) == config
    (tmp_path / "c.json").write_text(json.dumps(sparse))
    assert CurriculumConfig.from_file(tmp_path / "c.json") == config
    yaml = pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(sparse))
    assert CurriculumConfig.from_file(tmp_path / "c.yaml") == config
    with pytest.raises(ValueError, match="value"):
        CurriculumConfig.model_validate({**sparse, "algorithm": {"algorithm": "constant", "value": -1.0}})


def test_extra_algorithm_checkpoint_and_export_round_trip(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    for url in (None, redis_url):
        with Curriculum(make_config(url, "extra-ckpt")) as source:
            play(source, 300)
            state = source.get_state()
            assert CurriculumState.model_validate_json(state.model_dump_json()) == state
            assert {"last_outcome", "shifted"} <= set(state.tasks[0].model_dump())
            with Curriculum(make_config(url, "extra-ckpt2")) as target:
                target.load_state(state)
                assert target.store.export_state().tasks == state.tasks
                assert target.store.snapshot().records.tobytes() == source.store.snapshot().records.tobytes()
    info = export_namespace(redis_client, "extra-ckpt", tmp_path / "extra.msgpack")
    assert info.tasks == 8
    import_namespace(redis_client, "extra-copy", tmp_path / "extra.msgpack")
    copy = RedisStore.from_url(redis_url, "extra-copy")
    assert copy.export_state().tasks == RedisStore.from_url(redis_url, "extra-ckpt").export_state().tasks


def test_every_cli_read_command_works_on_extra_algorithm(redis_url: str, tmp_path: Path) -> None:
    with Curriculum(make_config(redis_url, "extra-cli")) as curriculum:
        play(curriculum, 100)
    common = ["--redis-url", redis_url, "--namespace", "extra-cli"]
    for command in (["stats"], ["labels"], ["inspect"], ["inspect", "--sort", "shifted"], ["namespaces"],
                    ["export", str(tmp_path / "cli.msgpack")]):  # fmt: skip
        assert main([*common, *command]) == 0, command


BUILT_IN = ("learning_progress", "prioritized_replay", "learnability", "uniform")
QUOTED_NAMES = [rf"[\"']{name}[\"']" for name in BUILT_IN]
NAMED = re.compile("|".join([*QUOTED_NAMES, r"\b(LearningProgress|PrioritizedReplay|Learnability|Uniform)Config\b"]))
"""A built-in algorithm named in code: its name as a string, or its config class."""

ALLOWED = {
    "README.md",
    "curriculum_redis/__init__.py",
    "curriculum_redis/algorithms/__init__.py",
    *(f"curriculum_redis/algorithms/{name}.py" for name in BUILT_IN),
    *(f"lua/algorithm_{name}.lua" for name in BUILT_IN),
}

USERS = ("curriculum_redis/demo/",)
"""Code that uses the library as its users do, choosing algorithms (as ``examples/`` and ``benchmarks/``)."""

def test_adding_an_algorithm_touches_nothing_else() -> None:
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "lua").glob("*.lua")]
    naming = {
        path.relative_to(ROOT).as_posix()
        for path in files
        if NAMED.search(path.read_text(encoding="utf-8")) and not path.relative_to(ROOT).as_posix().startswith(USERS)
    }
    assert naming - ALLOWED == set()
