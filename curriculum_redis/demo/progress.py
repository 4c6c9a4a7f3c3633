"""Watching the demo run: progress from the counters, label shares from the run's history in Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from curriculum_redis.curriculum import Curriculum
from curriculum_redis.demo.report import Series
from curriculum_redis.demo.student import KINDS, SimulatedStudent, TaskKind, label_kind
from curriculum_redis.demo.workers import Workers
from curriculum_redis.history import History, read_history, set_interval
from curriculum_redis.store.redis import RedisStore

HISTORY_POINTS = 200
"""History entries the demo asks for over its run: the picture's resolution."""


def label_samples(stats: dict[str, float]) -> dict[str, float]:
    return {key[len("label/") : -len("/samples")]: v for key, v in stats.items() if _is_samples_key(key)}


def _is_samples_key(key: str) -> bool:
    return key.startswith("label/") and key.endswith("/samples")


def episodes_done(stats: dict[str, float]) -> int:
    return int(stats.get("num_completed", 0))


@dataclass
class Recorder:
    """Polls the curriculum's counters (progress), its history in Redis (label sampling shares by
    episodes, not by poll), and the learner's mastery."""

    monitor: Curriculum
    learner: SimulatedStudent
    started: float
    series: Series = field(default_factory=Series)
    history: list[tuple[int, int]] = field(default_factory=list)
    last_stats: dict[str, float] = field(default_factory=dict)

    def poll(self) -> int:
        stats = self.monitor.stats()
        self.last_stats = stats
        done = episodes_done(stats)
        store = self.monitor.store
        if isinstance(store, RedisStore):  # the demo's picture is the run's history, by episodes
            self.series = series_of(read_history(store.client, self.monitor.config.namespace))
        self.history.append((done, self.learner.mastered_levels()))
        return done

    def keep_history(self, total: int) -> None:
        """About HISTORY_POINTS entries over ``total`` episodes, however short the run."""
        store = self.monitor.store
        if isinstance(store, RedisStore):
            self.monitor.refresh()  # attaches (the namespace must exist to hold an interval)
            set_interval(store.client, self.monitor.config.namespace, max(1, total // HISTORY_POINTS))


def series_of(history: History) -> Series:
    """The label shares of each history interval, with their server times since the first point."""
    start = history.points[0].time_s if history.points else 0.0
    return Series(
        seconds=[round(p.time_s - start, 3) for p in history.points[1:]],
        episodes=history.episodes,
        share=history.share(),
    )


def watch(
    workers: Workers, recorder: Recorder, console: Console, *, total: int, levels: int, progress: bool, poll_s: float
) -> None:
    """Wait for the workers, showing progress: a live bar on a terminal, plain lines otherwise."""
    columns = (
        TextColumn("[bold]episodes"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[mastery]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    recorder.keep_history(total)
    live = progress and console.is_terminal
    lines = _ProgressLines(console, total, levels) if progress and not live else None
    with Progress(*columns, console=console, disable=not live, refresh_per_second=4) as bars:
        bar = bars.add_task("episodes", total=total, mastery=f"levels mastered 0/{levels}")
        while workers.alive():
            workers.wait(poll_s)
            if workers.failed():
                workers.stop.set()
                return
            done = recorder.poll()
            mastered = recorder.history[-1][1]
            bars.update(bar, completed=min(done, total), mastery=f"levels mastered {mastered}/{levels}")
            if lines is not None:
                lines.update(done, recorder.last_stats, mastered)
    if lines is not None:
        lines.update(recorder.poll(), recorder.last_stats, recorder.history[-1][1], final=True)


@dataclass
class _ProgressLines:
    """Progress as plain lines, for output that is not a terminal (a log file, a pipe, CI): one line at
    every tenth of the episodes or every ``every_s`` seconds, whichever comes first, and one at the end."""

    console: Console
    total: int
    levels: int
    every_s: float = 10.0
    _decile: int = 0
    _done: int = 0
    _time: float = field(default_factory=time.monotonic)
    _kinds: dict[TaskKind, float] = field(default_factory=dict)

    def update(self, done: int, stats: dict[str, float], mastered: int, final: bool = False) -> None:
        now = time.monotonic()
        decile = min(10, done * 10 // max(self.total, 1))
        due = decile > self._decile or now - self._time >= self.every_s
        if (final and done == self._done) or not (final or due):
            return
        kinds: dict[TaskKind, float] = dict.fromkeys(KINDS, 0.0)
        for label, samples in label_samples(stats).items():
            kind = label_kind(label)
            if kind is not None:
                kinds[kind] += samples
        delta = {kind: kinds[kind] - self._kinds.get(kind, 0.0) for kind in KINDS}
        drawn = sum(delta.values()) or 1.0
        shares = ", ".join(f"{kind} {delta[kind] / drawn:.0%}" for kind in KINDS)
        rate = (done - self._done) / max(now - self._time, 1e-9)
        self.console.print(
            f"episodes {done:,}/{self.total:,} ({done / max(self.total, 1):.0%}), {rate:,.0f}/s, "
            f"levels mastered {mastered}/{self.levels}; drawn since the last line: {shares}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        self._decile, self._done, self._time, self._kinds = decile, done, now, kinds
