"""The demo's worker processes: actors that train one shared student through the curriculum.

Each worker is a spawned process with its own ``Curriculum`` on the same namespace; the student's skills
live in a ``multiprocessing`` array, so every episode any worker plays teaches the same student.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from curriculum_redis.config import CurriculumConfig
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.demo.student import SimulatedStudent, StudentParams


def _worker(
    config: CurriculumConfig,
    index: int,
    episodes: int,
    params: StudentParams,
    levels: int,
    skills: Any,
    stop: Any,
) -> None:
    """One actor: draw a task, play it with the shared student, report the score."""
    for sig in _PARENT_HANDLED:  # the parent handles Ctrl-C and hang-ups and tells us through ``stop``
        signal.signal(sig, signal.SIG_IGN)
    student = SimulatedStudent(
        config.seed * 1000 + index + 1, levels, params, skills=skills_view(skills), lock=skills.get_lock()
    )
    with Curriculum(config) as curriculum:
        for done in range(episodes):
            if done % 512 == 0 and stop.is_set():
                break
            task = curriculum.get_task()
            curriculum.update_task_performance(task.task_id, student.episode(task.env_cfg))


def skills_view(skills: Any) -> npt.NDArray[np.float64]:
    """A numpy view on a ``multiprocessing.Array('d', n)``: writes go to the shared memory."""
    return np.frombuffer(memoryview(skills.get_obj()), dtype=np.float64)


def split(total: int, parts: int) -> list[int]:
    """``total`` episodes in ``parts`` shares that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


_PARENT_HANDLED = (signal.SIGINT, signal.SIGHUP)
"""Signals a terminal sends to the whole process group; the parent turns them into a clean stop. SIGTERM
stays at its default in workers: it is what ``Process.terminate`` sends to one that hangs."""


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Start children with SIGINT and SIGHUP ignored (inherited across exec), so Ctrl-C or a closed
    terminal reaches only the parent, which stops them in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _PARENT_HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Workers:
    """The running workers and the event that asks them to stop."""

    processes: list[multiprocessing.process.BaseProcess]
    stop: Any

    def failed(self) -> list[tuple[int, int]]:
        return [(i, p.exitcode) for i, p in enumerate(self.processes) if p.exitcode not in (None, 0)]

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.processes)

    def wait(self, timeout: float) -> None:
        sentinels = [p.sentinel for p in self.processes if p.is_alive()]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask workers to stop (they flush what they hold), then terminate any that hang."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for p in self.processes:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.processes:
            if p.is_alive():
                p.terminate()
                p.join(2.0)


def start_workers(
    ctx: Any, config: CurriculumConfig, episodes: int, count: int, params: StudentParams, levels: int, skills: Any
) -> Workers:
    """Start ``count`` spawned workers sharing ``episodes``, with the parent's Ctrl-C and hang-ups kept
    from them; the caller stops them with :meth:`Workers.shutdown`."""
    workers = Workers([], ctx.Event())
    with sigint_ignored():
        for index, share in enumerate(split(episodes, count)):
            args = (config, index, share, params, levels, skills, workers.stop)
            process = ctx.Process(target=_worker, args=args, name=f"curriculum-demo-{index}", daemon=True)
            process.start()
            workers.processes.append(process)
    return workers
