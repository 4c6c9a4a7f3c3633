"""The local sampler: draws task ids from a snapshot of probabilities with no network round trip.

Draws are made in vectorised blocks (one ``searchsorted`` over a cumulative distribution) and handed
out one at a time, so a single draw costs a list pop. ``RefreshPolicy`` decides when the snapshot is
old enough to be read again: every N draws or every T seconds, whichever comes first.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from curriculum_redis.errors import CurriculumError


class EmptyPoolError(CurriculumError):
    """The snapshot holds no task to draw from."""


class LocalSampler:
    """Categorical sampling over a fixed snapshot of (task id, probability)."""

    def __init__(self, rng: np.random.Generator, block_size: int = 64) -> None:
        self._rng = rng
        self._block_size = block_size
        self._ids: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._cdf: npt.NDArray[np.float64] = np.zeros(0)
        self._block: list[int] = []

    def load(self, task_ids: npt.NDArray[np.int64], probs: npt.NDArray[np.float64]) -> None:
        if task_ids.shape != probs.shape:
            raise ValueError(f"{task_ids.size} task ids for {probs.size} probabilities")
        self._ids = np.asarray(task_ids, dtype=np.int64)
        cdf = np.cumsum(probs, dtype=np.float64)
        self._cdf = cdf / cdf[-1] if cdf.size and cdf[-1] > 0 else cdf
        self._block = []

    @property
    def size(self) -> int:
        return int(self._ids.size)

    def draw_batch(self, n: int) -> npt.NDArray[np.int64]:
        if self._ids.size == 0:
            raise EmptyPoolError("the task pool is empty: nothing to sample")
        idx = np.searchsorted(self._cdf, self._rng.random(n), side="right")
        return self._ids[np.minimum(idx, self._ids.size - 1)]

    def draw(self) -> int:
        if not self._block:
            self._block = self.draw_batch(self._block_size).tolist()
            self._block.reverse()
        return self._block.pop()


class RefreshPolicy:
    """Due every ``every_draws`` draws or ``every_s`` seconds since the last refresh."""

    def __init__(self, every_draws: int, every_s: float) -> None:
        self.every_draws = every_draws
        self.every_s = every_s
        self._draws = 0
        self._deadline = 0.0

    def tick(self) -> bool:
        """Count one draw and say whether a refresh is due."""
        self._draws += 1
        return self._draws >= self.every_draws or time.monotonic() >= self._deadline

    def refreshed(self) -> None:
        self._draws = 0
        self._deadline = time.monotonic() + self.every_s
