"""SIGTERM and SIGHUP handled as Ctrl-C: the ``finally`` blocks that stop workers and servers run.

Python's default for SIGTERM and SIGHUP is to die at once, skipping ``finally`` blocks and ``atexit``
hooks, which would orphan a demo's redis-server and worker processes (and the multiprocessing resource
tracker, which lives as long as any of them). :func:`stop_on_signals` turns the first such signal into
:class:`TerminatedBySignal`, a ``KeyboardInterrupt``, so every path that already cleans up after Ctrl-C
cleans up after ``kill``, ``timeout`` or a closed terminal as well.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)

EXIT_INTERRUPTED = 128 + signal.SIGINT
"""The exit code after Ctrl-C (130), by the shell's convention for a process ended by a signal."""


class TerminatedBySignal(KeyboardInterrupt):
    """Raised in the main thread by the first SIGTERM or SIGHUP inside :func:`stop_on_signals`."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (SIGTERM: 143)."""
        return 128 + self.signum


@contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = HANDLED_SIGNALS) -> Iterator[None]:
    """Raise :class:`TerminatedBySignal` on the first of ``signals``; ignore repeats, so that a second
    ``kill`` cannot interrupt the cleanup the first one started. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise TerminatedBySignal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
