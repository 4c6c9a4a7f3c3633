"""Worker for the finite-pool multi-process test: importable by name, so "spawn" children can run it."""

from __future__ import annotations

from typing import Any

from curriculum_redis import Curriculum, CurriculumConfig


def fill_and_run(config_json: str, barrier: Any, draws: int) -> list[int]:
    """Attach at the same moment as the other workers (so all fill the empty pool at once), then run."""
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    barrier.wait()
    seen = []
    for _ in range(draws):
        task = curriculum.get_task()
        seen.append(task.task_id)
        curriculum.update_task_performance(task.task_id, 0.0)
    curriculum.close()
    return seen
