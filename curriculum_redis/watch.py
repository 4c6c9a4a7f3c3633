"""``curriculum-redis watch``: a live terminal view of one namespace, drawn from its counters and history.

A frame is the headline counters and episodes/s, then one row per label (the most sampled first): its share
of the last interval's draws, success and mean score, each with a sparkline over the history. It only
reads, so watching a run changes nothing; ``--once`` prints one frame, which fits 80 columns when piped.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from curriculum_redis.history import History, read_history, read_interval
from curriculum_redis.store.connection import Client, text
from curriculum_redis.store.keys import NamespaceKeys

__all__ = ["Frame", "command", "plot", "read_frame", "render", "run", "sparkline"]

SPARK = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 16
"""History points a sparkline shows (its width in characters)."""
MAX_ROWS = 12
"""Labels shown; the rest are counted in the caption."""
HEADLINE = ("num_completed", "num_scheduled", "num_created", "num_evicted", "num_failures")


def sparkline(values: Sequence[float | None], low: float = 0.0, high: float = 1.0) -> str:
    """One character per value, scaled between ``low`` and ``high``; a space where there is no value."""
    span = high - low if high > low else 1.0
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            level = min(max((v - low) / span, 0.0), 1.0)
            out.append(SPARK[round(level * (len(SPARK) - 1))])
    return "".join(out)


@dataclass
class Frame:
    """What one frame shows: counters, pool size, interval, history, and the episode rate."""

    namespace: str
    counters: dict[str, int]
    pool: int
    interval: int
    history: History
    rate: float | None


def read_frame(client: Client, namespace: str, previous: Frame | None = None, seconds: float = 0.0) -> Frame:
    """Read one frame; the rate comes from ``previous`` (``seconds`` ago) when given, else from the history."""
    keys = NamespaceKeys(namespace)
    counters = {text(k): int(float(text(v))) for k, v in client.hgetall(keys.counters).items()}
    pool = client.hget(keys.meta, "pool_size")
    history = read_history(client, namespace, count=SPARK_POINTS + 1)
    rate = history.episodes_per_second()
    if previous is not None and seconds > 0:
        done = counters.get("num_completed", 0) - previous.counters.get("num_completed", 0)
        rate = done / seconds
    return Frame(namespace, counters, int(text(pool)) if pool else 0, read_interval(client, namespace), history, rate)


def _last(values: Sequence[float | None]) -> str:
    for v in reversed(values):
        if v is not None:
            return f"{v:.2f}"
    return "-"


def render(frame: Frame) -> Group:
    """The frame as rich renderables; every line fits 80 columns."""
    c = frame.counters
    rate = "-" if frame.rate is None else f"{frame.rate:,.0f}"
    head = Text(
        f"namespace {frame.namespace!r}  episodes {c.get('num_completed', 0):,}  episodes/s {rate}  "
        f"pool {frame.pool}\ncreated {c.get('num_created', 0):,}  evicted {c.get('num_evicted', 0):,}  "
        f"failures {c.get('num_failures', 0):,}  history: {len(frame.history)} pts, every {frame.interval:,} ep",
        no_wrap=False,
    )
    history = frame.history
    if len(history) < 2:
        note = Text("no history yet: an entry is written every history_every episodes of the shared clock")
        return Group(head, note)
    share, success, score = history.share(), history.success(), history.score()
    ranked = sorted(share, key=lambda label: (-share[label][-1], label))
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    table.add_column("label", overflow="ellipsis", no_wrap=True, max_width=27)
    table.add_column("share", justify="right", width=5)
    table.add_column("", width=SPARK_POINTS, no_wrap=True)
    table.add_column("succ", justify="right", width=4)
    table.add_column("", width=SPARK_POINTS, no_wrap=True)
    table.add_column("score", justify="right", width=5)
    high = max((v for values in share.values() for v in values), default=1.0)
    for label in ranked[:MAX_ROWS]:
        table.add_row(
            label,
            f"{share[label][-1]:.2f}",
            sparkline(share[label][-SPARK_POINTS:], high=high),
            _last(success[label]),
            sparkline(success[label][-SPARK_POINTS:]),
            _last(score[label]),
        )
    first, last = history.points[0].episode, history.points[-1].episode
    caption = f"per interval, episodes {first:,}..{last:,}"
    if len(ranked) > MAX_ROWS:
        caption += f"; {len(ranked) - MAX_ROWS} more labels"
    return Group(head, table, Text(caption, style="dim"))


def command(client: Client, namespace: str, args: argparse.Namespace, console: Console) -> int:
    """The ``watch`` (``--once``, ``--every``) and ``plot`` (``--out``) commands of the CLI."""
    if args.command == "plot":
        console.print(plot(client, namespace, args.out))
        return 0
    return run(client, namespace, console, args.once, args.every)


def plot(client: Client, namespace: str, path: Path) -> str:
    """``curriculum-redis plot``: draw the namespace's history to ``path``; says where it went."""
    from curriculum_redis import plots  # matplotlib is imported only to draw

    return f"wrote {plots.plot_namespace(client, namespace, path)}"


def run(client: Client, namespace: str, console: Console, once: bool, every_s: float = 1.0) -> int:
    """Print one frame (``once``) or refresh one every ``every_s`` seconds until Ctrl-C."""
    frame = read_frame(client, namespace)
    if once:
        console.print(render(frame))
        return 0
    try:
        with Live(render(frame), console=console, refresh_per_second=4, transient=False) as live:
            while True:
                time.sleep(every_s)
                frame = read_frame(client, namespace, frame, every_s)
                live.update(render(frame))
    except KeyboardInterrupt:
        return 0
