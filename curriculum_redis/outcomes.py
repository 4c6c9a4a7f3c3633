"""The outcome buffer: outcomes wait here until one script call writes a whole batch.

Batches are sealed with a per-client sequence number, so a batch that is re-sent (after a lost reply
or an outage) is applied once. While the store is unreachable sealed batches queue up, bounded by
``max_pending_outcomes``; past that the oldest are dropped, counted and warned about.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from curriculum_redis.config import BufferConfig
from curriculum_redis.store.base import Outcome, OutcomeBatch

log = logging.getLogger(__name__)


class OutcomeBuffer:
    def __init__(self, config: BufferConfig) -> None:
        self.config = config
        self._outcomes: list[Outcome] = []
        self._scheduled: dict[int, int] = {}
        self._opened_at = 0.0
        self.pending: deque[OutcomeBatch] = deque()
        self.pending_outcomes = 0
        self.dropped_outcomes = 0

    def add(self, outcome: Outcome) -> None:
        if not self._outcomes and not self._scheduled:
            self._opened_at = time.monotonic()
        self._outcomes.append(outcome)

    def add_sample(self, label_hash: int) -> None:
        if not self._outcomes and not self._scheduled:
            self._opened_at = time.monotonic()
        self._scheduled[label_hash] = self._scheduled.get(label_hash, 0) + 1

    @property
    def open_outcomes(self) -> int:
        return len(self._outcomes)

    def is_empty(self) -> bool:
        return not self._outcomes and not self._scheduled and not self.pending

    def full(self) -> bool:
        return len(self._outcomes) >= self.config.batch_size

    def stale(self) -> bool:
        has_open = bool(self._outcomes or self._scheduled)
        return has_open and time.monotonic() - self._opened_at >= self.config.max_age_s

    def seal(self, client_id: int, seq: int) -> bool:
        """Close the open batch under ``seq``; False when there was nothing to seal."""
        if not self._outcomes and not self._scheduled:
            return False
        batch = OutcomeBatch(client_id, seq, tuple(self._outcomes), dict(self._scheduled))
        self._outcomes = []
        self._scheduled = {}
        self.pending.append(batch)
        self.pending_outcomes += len(batch.outcomes)
        self._drop_overflow()
        return True

    def _drop_overflow(self) -> None:
        while self.pending_outcomes > self.config.max_pending_outcomes and len(self.pending) > 1:
            oldest = self.pending.popleft()
            self.pending_outcomes -= len(oldest.outcomes)
            self.dropped_outcomes += len(oldest.outcomes)
            log.warning(
                "outcome buffer full (%d pending outcomes > max_pending_outcomes=%d): dropped the oldest "
                "batch of %d outcomes (%d dropped so far)",
                self.pending_outcomes + len(oldest.outcomes),
                self.config.max_pending_outcomes,
                len(oldest.outcomes),
                self.dropped_outcomes,
            )

    def acknowledge(self) -> OutcomeBatch:
        """The oldest pending batch has been applied (or refused as a duplicate): forget it."""
        batch = self.pending.popleft()
        self.pending_outcomes -= len(batch.outcomes)
        return batch
