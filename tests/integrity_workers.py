"""Worker functions of test_integrity.py, importable by name for "spawn" children."""

from __future__ import annotations

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
