"""The local sampler: draws task ids from a snapshot of probabilities with no network round trip.

Draws are made in vectorised blocks (one ``searchsorted`` over a cumulative distribution) and handed
out one at a time, so a single draw costs a list pop. ``RefreshPolicy`` decides when the snapshot is
old enough to be read again: every N draws or every T seconds, whichever comes first (draws only when T is
``None``, so a seeded run does not depend on the wall clock). The first refreshes come sooner (after
``first_draws``, then twice as many each time up to N), so the algorithm steers from the first episodes
instead of sampling its initial, uniform snapshot for N draws.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from curriculum_redis.errors import CurriculumError

if TYPE_CHECKING:
    from curriculum_redis.config import SamplerConfig


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
    """Due after ``every_draws`` draws or ``every_s`` seconds (never by time when it is ``None``) since the
    last refresh; the gap in draws starts at ``first_draws`` and doubles up to ``every_draws``."""

    def __init__(self, every_draws: int, every_s: float | None, first_draws: int | None = None) -> None:
        self.every_draws = every_draws
        self.every_s = every_s
        self.first_draws = every_draws if first_draws is None else min(first_draws, every_draws)
        self._gap = 0
        self._draws = 0
        self._deadline = 0.0

    @classmethod
    def from_config(cls, config: SamplerConfig, recommended_every_draws: int = 1000) -> RefreshPolicy:
        """``recommended_every_draws`` (the algorithm's) applies when the config leaves the cadence open."""
        every = config.refresh_every_draws if config.refresh_every_draws is not None else recommended_every_draws
        return cls(every, config.refresh_every_s, config.first_refresh_after_draws)

    @property
    def gap(self) -> int:
        """Draws between the last refresh and the next one (0 before the first)."""
        return self._gap

    def tick(self) -> bool:
        """Count one draw and say whether a refresh is due."""
        self._draws += 1
        if self._draws >= self._gap:
            return True
        return self.every_s is not None and time.monotonic() >= self._deadline

    def refreshed(self) -> None:
        self._gap = self.first_draws if self._gap == 0 else min(2 * self._gap, self.every_draws)
        self._draws = 0
        if self.every_s is not None:
            self._deadline = time.monotonic() + self.every_s
