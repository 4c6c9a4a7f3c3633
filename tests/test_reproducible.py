"""Seeded runs repeat: with ``refresh_every_s=None`` one process draws the same task sequence twice, in
memory and on Redis, and the algorithm steers from the first refreshes (which come after a few draws)."""

from __future__ import annotations

from typing import Any

import pytest

from curriculum_redis import BufferConfig, Curriculum, CurriculumConfig, LearningProgressConfig
from curriculum_redis.config import SamplerConfig
from curriculum_redis.store.memory import MemoryStore
from curriculum_redis.tasks import BucketedTaskGenerator

GENERATOR = BucketedTaskGenerator(buckets={"level": list(range(8)), "variant": ["a", "b", "c"]})


def config(seed: int = 5, **kwargs: Any) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(num_active_tasks=16, min_samples_for_lp=2),
        sampler=SamplerConfig(refresh_every_draws=50, refresh_every_s=None),
        buffer=BufferConfig(batch_size=7),
        seed=seed,
        **kwargs,
    )


def run(curriculum: Curriculum, draws: int = 600) -> list[int]:
    """A deterministic learner: success grows with practice on low levels, never on level 7."""
    seen: dict[int, int] = {}
    out = []
    for _ in range(draws):
        task = curriculum.get_task()
        out.append(task.task_id)
        level = task.env_cfg["level"]
        seen[level] = seen.get(level, 0) + 1
        curriculum.update_task_performance(
            task.task_id, 0.0 if level == 7 else min(1.0, seen[level] / (20 * (level + 1)))
        )
    curriculum.close()
    return out


def test_one_process_repeats_its_task_sequence_in_memory() -> None:
    first, second = run(Curriculum(config())), run(Curriculum(config()))
    assert first == second
    assert len(set(first)) > 1
    assert run(Curriculum(config(seed=6))) != first


@pytest.mark.redis
def test_one_process_repeats_its_task_sequence_on_redis(redis_url: str) -> None:
    first = run(Curriculum(config(redis_url=redis_url, namespace="repro-a")))
    second = run(Curriculum(config(redis_url=redis_url, namespace="repro-b")))
    assert first == second
    assert len(set(first)) > 1


class CountingStore(MemoryStore):
    snapshots = 0

    def snapshot(self) -> Any:
        self.snapshots += 1
        return super().snapshot()


def test_the_first_refresh_comes_after_a_few_draws_not_the_cadence() -> None:
    store = CountingStore("early")
    curriculum = Curriculum(config().model_copy(update={"sampler": SamplerConfig(refresh_every_draws=1000)}), store)
    curriculum.get_task()
    attached = store.snapshots
    for _ in range(8):
        curriculum.get_task()
    assert store.snapshots > attached  # refreshed after 8 draws, not 1000
