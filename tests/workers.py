"""Worker functions for multi-process tests: importable by name, so "spawn" children can run them."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np

from curriculum_redis import Curriculum, CurriculumConfig
from curriculum_redis.labels import label_hash
from curriculum_redis.store.redis import RedisStore


def report_outcomes(config_json: str, n_outcomes: int, seed: int) -> dict[str, Any]:
    """Sample and report ``n_outcomes`` episodes; return what this process reported, per task."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    rng = np.random.default_rng(seed)
    per_task: dict[int, int] = {}
    labels: dict[int, str] = {}
    for _ in range(n_outcomes):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, float(rng.random()))
        per_task[task.task_id] = per_task.get(task.task_id, 0) + 1
        labels[task.task_id] = task.label
    curriculum.close()
    return {"per_task": per_task, "labels": labels, "client_id": curriculum.client_id, "pid": os.getpid()}


def read_visible_state(config_json: str) -> dict[str, Any]:
    """What another process sees: the pool's tasks with their labels, and this process's label hashes."""
    config = CurriculumConfig.model_validate_json(config_json)
    assert config.redis_url is not None
    store = RedisStore.from_url(config.redis_url, config.namespace)
    labels = store.labels()
    tasks = {}
    for task_id in store.snapshot().task_ids.tolist():
        record = store.read_task(task_id)
        assert record is not None
        tasks[task_id] = record.label
    store.close()
    return {
        "labels": labels,
        "tasks": tasks,
        "hashes": {label: label_hash(label) for label in labels.values()},
        "hashseed": os.environ.get("PYTHONHASHSEED"),
    }


def evict_same_victims(url: str, namespace: str, victims: list[int], first_new_id: int, start_at: float) -> list[int]:
    """Try to evict every victim (as every other process does); return the victims this process evicted."""
    from curriculum_redis.store.base import Eviction
    from curriculum_redis.tasks import Task

    store = RedisStore.from_url(url, namespace)
    while time.time() < start_at:
        time.sleep(0.001)
    won = []
    for i, victim in enumerate(victims):
        replacement = Task(first_new_id + i, f"replacement-{first_new_id}", {})
        if store.evict_and_replace(Eviction(victim, replacement, "low_score", 0, float("inf"))) == "evicted":
            won.append(victim)
    store.close()
    return won


def churn(config_json: str, n_outcomes: int, seed: int) -> int:
    """Run episodes with aggressive eviction; return how many outcomes were reported."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    rng = np.random.default_rng(seed)
    for _ in range(n_outcomes):
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, float(rng.random() < 0.3))
    curriculum.close()
    return n_outcomes


def run_until_killed(config_json: str) -> None:
    """Write outcomes one script call at a time until SIGKILLed."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    rng = np.random.default_rng(os.getpid())
    os.kill(os.getpid(), signal.SIGCONT)
    while True:
        task = curriculum.get_task()
        curriculum.update_task_performance(task.task_id, float(rng.random()))


def train_near_corner(config_json: str, n_outcomes: int) -> dict[str, Any]:
    """Report ``n_outcomes`` episodes where only starts within 2 steps of the corner (0, 0) succeed; return the
    draws per distance from the corner and this process's final probabilities per distance."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    drawn: dict[int, int] = {}
    for _ in range(n_outcomes):
        task = curriculum.get_task()
        start = task.env_cfg["start"]
        distance = int(start["row"] + start["col"])
        drawn[distance] = drawn.get(distance, 0) + 1
        curriculum.update_task_performance(task.task_id, 1.0 if distance <= 2 else 0.0)
    curriculum.flush()
    curriculum.refresh()
    mass: dict[int, float] = {}
    for task_id, p in curriculum.probabilities().items():
        start = curriculum.config.generator.get_task(task_id).env_cfg["start"]
        distance = int(start["row"] + start["col"])
        mass[distance] = mass.get(distance, 0.0) + p
    curriculum.close()
    return {"drawn": drawn, "mass": mass}
