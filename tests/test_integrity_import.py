"""Issue 13 on a real server: exports with a valid checksum but impossible content are refused, with
nothing written, by the CLI's import, admin.import_namespace and Curriculum.load_state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from integrity_workers import pool_config

from curriculum_redis import Curriculum, CurriculumConfig, admin
from curriculum_redis.cli import main
from curriculum_redis.errors import CheckpointError, StoreError
from curriculum_redis.state import CurriculumState


def make_config(url: str, namespace: str) -> CurriculumConfig:
    return pool_config(url, namespace, levels=6, pool=8)


def first_task(raw: dict[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = raw["tasks"][0]
    return task


def first_label(raw: dict[str, Any]) -> dict[str, Any]:
    stats: dict[str, Any] = next(iter(raw["label_stats"].values()))
    return stats


HOSTILE: dict[str, Callable[[dict[str, Any]], None]] = {
    "task id 2**53+1": lambda raw: first_task(raw).update(task_id=2**53 + 1),
    "pool_version 2**63-1": lambda raw: raw.update(pool_version=2**63 - 1),
    "num_completed 2**63-1": lambda raw: raw["counters"].update(num_completed=2**63 - 1),
    "negative counter": lambda raw: raw["counters"].update(num_evicted=-3),
    "label hash of another label": lambda raw: raw["labels"].update({str(12345): "grid:level=0"}),
    "label active -7": lambda raw: first_label(raw).update(active=-7),
    "label active off by one": lambda raw: first_label(raw).update(active=first_label(raw)["active"] + 1),
    "EMA above 1": lambda raw: first_task(raw).update(p_fast=1.5),
    "negative LP": lambda raw: first_task(raw).update(lp=-0.2),
    "slot outside the pool": lambda raw: first_task(raw).update(slot=99),
    "two tasks in one slot": lambda raw: raw["tasks"][1].update(slot=first_task(raw)["slot"]),
    "created - evicted off": lambda raw: raw["counters"].update(num_created=raw["counters"]["num_created"] + 1),
    "client seq 2**63-1": lambda raw: raw["client_seqs"].update({"7": 2**63 - 1}),
}


@pytest.fixture
def export(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> dict[str, Any]:
    with Curriculum(make_config(redis_url, "source")) as curriculum:
        for _ in range(200):
            curriculum.update_task_performance(curriculum.get_task().task_id, 0.7)
    path = tmp_path / "source.crx"
    admin.export_namespace(redis_client, "source", path)
    raw: dict[str, Any] = admin.decode_state(path.read_bytes()).model_dump(mode="json")
    return raw


def write(raw: dict[str, Any], path: Path) -> Path:
    path.write_bytes(admin.encode_state(CurriculumState.model_validate(raw)))  # a valid checksum
    return path


def test_the_untouched_export_imports(export: dict[str, Any], redis_client: redis.Redis, tmp_path: Path) -> None:
    admin.import_namespace(redis_client, "copy", write(export, tmp_path / "ok.crx"))
    assert admin.check_namespace(redis_client, "copy").ok


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_export_is_refused_with_nothing_written(
    attack: str, export: dict[str, Any], redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    HOSTILE[attack](export)
    path = write(export, tmp_path / "hostile.crx")
    with Curriculum(make_config(redis_url, "target")) as target:
        target.update_task_performance(target.get_task().task_id, 0.5)
    before = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    with pytest.raises(CheckpointError):
        admin.import_namespace(redis_client, "target", path, replace=True)
    with pytest.raises(CheckpointError):
        admin.import_namespace(redis_client, "fresh", path)
    assert main(["--redis-url", redis_url, "--namespace", "target", "import", str(path), "--replace"]) == 1
    state = CurriculumState.model_validate(export)
    with Curriculum(make_config(redis_url, "target")) as target, pytest.raises(StoreError):
        target.load_state(state)
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == before


def test_a_hostile_stage_export_is_refused(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    from curriculum_redis import StageCurriculum
    from curriculum_redis.algorithms.sequential import SequentialConfig

    stages = SequentialConfig.model_validate(
        {"stages": [{"name": "easy", "env_cfg": {"level": 0}}, {"name": "hard", "env_cfg": {"level": 1}}]}
    )
    curriculum = StageCurriculum(stages, redis_url, "stages-src")
    for _ in range(5):
        curriculum.record_episode(0, True)
    path = tmp_path / "stages.crx"
    admin.export_namespace(redis_client, "stages-src", path)
    raw = admin.decode_state(path.read_bytes()).model_dump(mode="json")
    episodes = next(k for k in raw["stage"]["history"] if k.endswith(":episodes"))
    raw["stage"]["history"][episodes] = str(2**63 - 1)
    with pytest.raises(CheckpointError, match="2\\^53"):
        admin.import_namespace(redis_client, "stages-dst", write(raw, tmp_path / "hostile.crx"))
    assert redis_client.keys("{cr:stages-dst}:*") == []
