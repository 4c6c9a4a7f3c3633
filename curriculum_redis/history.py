"""The run's history, read back from the capped stream ``{cr:<ns>}:history``.

``lua/include_history.lua`` appends one entry each time the shared episode clock crosses a multiple of
the namespace's interval (whichever process's batch crosses it), so the history is the run's, not one
process's, and lives with the rest of the namespace (RDB/AOF, export/import). Each entry holds cumulative
counts; :class:`History` turns consecutive entries into per-interval figures (sampling share, success,
score, pool churn) for ``watch``, ``plot``, the demo's picture and the loggers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curriculum_redis.errors import ConfigError, NamespaceNotFoundError
from curriculum_redis.store.connection import Client, text
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.schema import HISTORY_EVERY

__all__ = ["History", "HistoryPoint", "LabelTotals", "read_history", "read_interval", "set_interval"]

INTERVAL_FIELD = "history_every"
"""The meta field holding a namespace's interval (episodes between two entries); absent: HISTORY_EVERY."""


@dataclass(frozen=True)
class LabelTotals:
    """One label's cumulative counts at an entry."""

    completions: float = 0.0
    samples: float = 0.0
    successes: float = 0.0
    score_sum: float = 0.0


@dataclass(frozen=True)
class HistoryPoint:
    """One stream entry: the clock and the cumulative counts when the interval was crossed."""

    entry_id: str
    episode: int
    pool: int
    counters: dict[str, int]
    labels: dict[int, LabelTotals]

    @property
    def time_s(self) -> float:
        """Server time of the entry (its stream id's milliseconds), in seconds."""
        return int(self.entry_id.split("-")[0]) / 1000.0

    @staticmethod
    def parse(entry_id: bytes | str, fields: dict[bytes | str, bytes | str]) -> HistoryPoint:
        counters: dict[str, int] = {}
        parts: dict[int, dict[str, float]] = {}
        episode = pool = 0
        for raw_name, raw_value in fields.items():
            name, value = text(raw_name), text(raw_value)
            if name == "episode":
                episode = int(float(value))
            elif name == "pool":
                pool = int(float(value))
            elif ":" in name:
                label, _, part = name.partition(":")
                parts.setdefault(int(label), {})[part] = float(value)
            else:
                counters[name] = int(float(value))
        labels = {
            h: LabelTotals(p.get("n", 0.0), p.get("s", 0.0), p.get("w", 0.0), p.get("x", 0.0)) for h, p in parts.items()
        }
        return HistoryPoint(text(entry_id), episode, pool, counters, labels)


@dataclass
class History:
    """A namespace's history points, oldest first, with its label names."""

    points: list[HistoryPoint]
    names: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)

    def name(self, label_hash: int) -> str:
        return self.names.get(label_hash, str(label_hash))

    @property
    def episodes(self) -> list[int]:
        """The clock at each point but the first (each per-interval figure is for the interval ending there)."""
        return [p.episode for p in self.points[1:]]

    def label_hashes(self) -> list[int]:
        seen: dict[int, None] = {}
        for point in self.points:
            seen.update(dict.fromkeys(point.labels))
        return sorted(seen, key=self.name)

    def _deltas(self, part: str) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        hashes = self.label_hashes()
        for before, after in zip(self.points, self.points[1:], strict=False):
            for h in hashes:
                now, then = after.labels.get(h, LabelTotals()), before.labels.get(h, LabelTotals())
                out.setdefault(h, []).append(getattr(now, part) - getattr(then, part))
        return out

    def share(self) -> dict[str, list[float]]:
        """Label -> its share of the tasks sampled in each interval (0 when nothing was sampled)."""
        deltas = self._deltas("samples")
        totals = [sum(column) for column in zip(*deltas.values(), strict=True)] if deltas else []
        return {
            self.name(h): [d / t if t > 0 else 0.0 for d, t in zip(v, totals, strict=True)] for h, v in deltas.items()
        }

    def _ratio(self, part: str) -> dict[str, list[float | None]]:
        done, part_deltas = self._deltas("completions"), self._deltas(part)
        return {
            self.name(h): [x / n if n > 0 else None for x, n in zip(part_deltas[h], done[h], strict=True)] for h in done
        }

    def success(self) -> dict[str, list[float | None]]:
        """Label -> success rate of its episodes in each interval (None: it played none)."""
        return self._ratio("successes")

    def score(self) -> dict[str, list[float | None]]:
        """Label -> mean score of its episodes in each interval (None: it played none)."""
        return self._ratio("score_sum")

    def churn(self) -> list[float]:
        """Tasks evicted in each interval, as a fraction of the pool."""
        return [
            (after.counters.get("num_evicted", 0) - before.counters.get("num_evicted", 0)) / max(after.pool, 1)
            for before, after in zip(self.points, self.points[1:], strict=False)
        ]

    def episodes_per_second(self, last: int = 5) -> float | None:
        """Episodes per second over the last ``last`` intervals (server time); None with fewer than 2 points."""
        window = self.points[-(last + 1) :]
        if len(window) < 2 or window[-1].time_s <= window[0].time_s:
            return None
        return (window[-1].episode - window[0].episode) / (window[-1].time_s - window[0].time_s)


def read_history(client: Client, namespace: str, count: int | None = None) -> History:
    """The last ``count`` points of the namespace's history (all of them when None), oldest first."""
    keys = NamespaceKeys(namespace)
    raw: list[Any] = (
        client.xrange(keys.history) if count is None else client.xrevrange(keys.history, count=count)[::-1]  # type: ignore[index]
    ) or []
    names = {int(text(h)): text(label) for h, label in client.hgetall(keys.labels).items()}
    return History([HistoryPoint.parse(entry_id, fields) for entry_id, fields in raw], names)


def read_interval(client: Client, namespace: str) -> int:
    """Episodes between two entries of the namespace's history (0: none are written)."""
    raw = client.hget(NamespaceKeys(namespace).meta, INTERVAL_FIELD)
    return HISTORY_EVERY if raw is None else int(text(raw))


def set_interval(client: Client, namespace: str, episodes: int) -> None:
    """Write an entry every ``episodes`` episodes of the shared clock from the next batch on (0: stop).

    One HSET, atomic on its own: the record script reads the field at every batch.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
        raise ConfigError(f"the history interval must be a whole number of episodes >= 0, not {episodes!r}")
    meta = NamespaceKeys(namespace).meta
    if not client.hexists(meta, "hypers"):  # a meta hash without hypers would look like a broken namespace
        raise NamespaceNotFoundError(namespace, "this server (attach a Curriculum to it, then set its interval)")
    client.hset(meta, INTERVAL_FIELD, episodes)
