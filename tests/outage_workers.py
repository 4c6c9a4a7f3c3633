"""Worker functions for the outage tests: importable by name, so "spawn" children can run them."""

from __future__ import annotations

import multiprocessing.synchronize
import time
from typing import Any

import numpy as np

from curriculum_redis import Curriculum, CurriculumConfig


def sample_through_outage(
    config_json: str,
    seed: int,
    warmed_up: multiprocessing.synchronize.Event,
    restarted: multiprocessing.synchronize.Event,
    results: Any,
    warmup_episodes: int = 100,
    episodes_after_restart: int = 300,
) -> None:
    """Run episodes (get_task, then update) before, during and after an outage of the store.

    Sets ``warmed_up`` after ``warmup_episodes``; keeps going until the parent sets ``restarted``, then
    runs ``episodes_after_restart`` more and closes (which flushes). Puts on ``results`` the time of every
    get_task() call, how many outcomes were reported, and what the buffer dropped or still holds.
    """
    curriculum = Curriculum(CurriculumConfig.model_validate_json(config_json))
    rng = np.random.default_rng(seed)
    draws: list[float] = []
    reported = after_restart = 0
    try:
        while after_restart < episodes_after_restart:
            draws.append(time.time())
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, float(rng.random()))
            reported += 1
            if reported == warmup_episodes:
                warmed_up.set()
            if restarted.is_set():
                after_restart += 1
            time.sleep(0.002)  # an "episode": the outage then spans many of them
        curriculum.close()
        results.put(
            {
                "seed": seed,
                "draws": draws,
                "reported": reported,
                "dropped": curriculum.dropped_outcomes,
                "pending": curriculum.pending_outcomes,
                "error": None,
            }
        )
    except Exception as exc:  # reported to the parent, which fails the test with it
        warmed_up.set()
        results.put({"seed": seed, "error": f"{type(exc).__name__}: {exc}", "reported": reported})
