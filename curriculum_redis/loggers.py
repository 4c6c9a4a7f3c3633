"""Send a namespace's statistics to TensorBoard, Weights & Biases or any ``log(stats, step)`` callback.

One line in a training script::

    logger = log_stats(curriculum, tensorboard_sink("runs/exp1"), every_episodes=1000)

A daemon thread reads the statistics (read-only, on its own connection, so it never touches the
curriculum object the training loop is using) and calls the sink each time the shared episode clock
(``num_completed``, every process's episodes) crosses a multiple of ``every_episodes``; the step is that
clock, so the curves of several processes' runs line up. Only one process should log a namespace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from curriculum_redis import reader
from curriculum_redis.curriculum import Curriculum
from curriculum_redis.errors import ConfigError
from curriculum_redis.store.connection import Client, client_from_url
from curriculum_redis.store.keys import NamespaceKeys

__all__ = ["Sink", "StatsLogger", "log_stats", "tensorboard_sink", "wandb_sink"]

Sink = Callable[[dict[str, float], int], None]
"""``sink(stats, step)``: what a logger calls with ``Curriculum.stats()``'s dict and the episode clock."""


class _Run(Protocol):
    def log(self, data: dict[str, Any], step: int | None = None) -> None: ...


def tensorboard_sink(logdir: str, prefix: str = "curriculum/") -> Sink:
    """A sink writing each statistic as a TensorBoard scalar (tensorboardX, the ``tensorboard`` extra)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        hint = "pip install 'curriculum_redis[tensorboard]'"
        raise ConfigError(f"TensorBoard logging needs tensorboardX: {hint}") from exc
    writer = SummaryWriter(logdir)

    def sink(stats: dict[str, float], step: int) -> None:
        for name, value in stats.items():
            writer.add_scalar(prefix + name, value, global_step=step)
        writer.flush()

    return sink


def wandb_sink(run: _Run | None = None, prefix: str = "curriculum/") -> Sink:
    """A sink calling ``run.log`` (``wandb.log`` when ``run`` is None: the ``wandb`` extra, after ``wandb.init``)."""
    if run is None:
        try:
            import wandb
        except ImportError as exc:
            raise ConfigError("W&B logging needs wandb: pip install 'curriculum_redis[wandb]'") from exc
        target: _Run = wandb
    else:
        target = run

    def sink(stats: dict[str, float], step: int) -> None:
        target.log({prefix + name: value for name, value in stats.items()}, step=step)

    return sink


class StatsLogger:
    """Polls the namespace's clock every ``poll_s`` seconds; logs when it crossed a multiple of
    ``every_episodes`` (once per crossing seen, however many intervals passed), and once more at
    :meth:`stop`."""

    def __init__(
        self, client: Client, namespace: str, sink: Sink, every_episodes: int = 1000, poll_s: float = 1.0
    ) -> None:
        if every_episodes < 1 or poll_s <= 0:
            raise ConfigError(f"every_episodes must be >= 1 and poll_s > 0, not {every_episodes} and {poll_s}")
        self.client, self.namespace, self.sink = client, namespace, sink
        self.every_episodes, self.poll_s = every_episodes, poll_s
        self.logged = 0
        self._last_step: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> bool:
        """Log if the clock crossed a multiple of ``every_episodes`` since the last log; True if it did."""
        clock = int(float(self.client.hget(NamespaceKeys(self.namespace).counters, "num_completed") or 0))
        if clock // self.every_episodes <= (self._last_step or 0) // self.every_episodes:
            return False
        return self.log_now()

    def log_now(self) -> bool:
        """Read the statistics and call the sink with the clock as the step (skipped if the clock hasn't moved)."""
        stats = reader.read_stats(self.client, self.namespace)
        step = int(stats.get("num_completed", 0))
        if step == self._last_step:
            return False
        self.sink(stats, step)
        self._last_step, self.logged = step, self.logged + 1
        return True

    def start(self) -> StatsLogger:
        self._thread = threading.Thread(target=self._run, name="curriculum-stats-logger", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def stop(self) -> None:
        """Stop the thread and log the final figures (call after the last ``flush()``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.log_now()
        self.client.close()

    def __enter__(self) -> StatsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def log_stats(
    curriculum: Curriculum, sink: Sink, every_episodes: int = 1000, poll_s: float = 1.0, start: bool = True
) -> StatsLogger:
    """A started :class:`StatsLogger` of ``curriculum``'s namespace, on a connection of its own."""
    url = curriculum.config.redis_url
    if url is None:
        raise ConfigError("log_stats reads the namespace from Redis: the curriculum's config has no redis_url")
    logger = StatsLogger(client_from_url(url), curriculum.config.namespace, sink, every_episodes, poll_s)
    return logger.start() if start else logger
