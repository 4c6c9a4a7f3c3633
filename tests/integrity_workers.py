"""Worker functions of test_integrity.py, importable by name for "spawn" children."""

from __future__ import annotations

from typing import Any

from curriculum_redis import Curriculum, CurriculumConfig


def run_worker(config_json: str, episodes: int) -> str:
    """A worker process: its outcome, or the name of the error that stopped it."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    try:
        for _ in range(episodes):
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, 0.5)
        curriculum.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def churn_through_drops(config_json: str, n_outcomes: int, seed: int) -> int:
    """Episodes with aggressive eviction while an admin drops and re-imports the namespace; returns how many
    draws found the pool empty (the namespace was dropped between a refresh's steps)."""
    import numpy as np

    from curriculum_redis.sampler import EmptyPoolError

    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    rng = np.random.default_rng(seed)
    empty = 0
    for _ in range(n_outcomes):
        try:
            task = curriculum.get_task()
        except EmptyPoolError:
            empty += 1
            continue
        curriculum.update_task_performance(task.task_id, float(rng.random() < 0.3))
    curriculum.close()
    return empty


def pool_config(url: str, namespace: str, *, levels: int = 8, pool: int = 16, **kwargs: Any) -> CurriculumConfig:
    """A learning-progress pool of ``pool`` tasks over ``levels`` levels, batches of 8: the tests' namespace."""
    from curriculum_redis import BucketedTaskGenerator, BufferConfig, LearningProgressConfig

    return CurriculumConfig(
        task_generator=BucketedTaskGenerator({}, {"level": list(range(levels))}, label="grid"),
        algorithm=LearningProgressConfig(num_active_tasks=pool),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=8),
        **kwargs,
    )
