"""The tables the CLI and the demo print, made to read at 80 columns and when piped.

Rules, the same for every table:

* An identifier (a task id, a label, a namespace) is never cut: its column is as wide as its longest
  value, so it can be pasted into ``redis-cli``. Headers are never cut either.
* A table wider than the console drops its lower-priority columns, deliberately and said so in the
  caption (``--json`` has every field); only when the identifiers alone do not fit does a label fold.
* Numbers: counts are integers with thousands separators (``12,345``); every other value (a rate, a
  probability, a score) has 4 significant digits (``0.06250``, ``1.000e-06``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

DEFAULT_WIDTH = 80
"""The console width when output is not a terminal and $COLUMNS is not set."""


def make_console(file: IO[str] | None = None) -> Console:
    """A console on stdout; when that is not a terminal, ``$COLUMNS`` columns wide (else 80), not the
    width of whatever terminal the process happens to have elsewhere."""
    stream = file or sys.stdout
    if stream.isatty():
        return Console(file=file)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else DEFAULT_WIDTH
    return Console(file=file, width=width)


def number(value: float, count: bool) -> str:
    """The one number format: counts as ``12,345``, anything else with 4 significant digits."""
    if count:
        return f"{round(value):,}"
    return f"{value:#.4g}"


@dataclass
class Column:
    """One column: its cells already formatted. Priority 0 is always shown; higher numbers go first
    when the table is too wide. ``wrap`` lets a prose column (a rule) wrap between words."""

    header: str
    cells: list[str]
    priority: int = 0
    justify: Literal["left", "right"] = "right"
    wrap: bool = False
    key: bool = False
    width: int = field(init=False)

    def __post_init__(self) -> None:
        self.width = max([cell_len(self.header), *(cell_len(c) for c in self.cells)])

    @property
    def fit_width(self) -> int:
        """The narrowest it may get: its widest cell, or for a wrapping column its longest word."""
        if not self.wrap:
            return self.width
        words = [w for text in (self.header, *self.cells) for w in text.split()]
        return max((cell_len(w) for w in words), default=1)


def table_width(widths: Iterable[int]) -> int:
    """Width of a ``box.SIMPLE_HEAD`` table with these column widths (1 space of padding each side)."""
    ws = list(widths)
    return 2 + sum(w + 2 for w in ws) + max(len(ws) - 1, 0)


def fitted_table(
    title: str, columns: Sequence[Column], width: int, row_styles: Sequence[str | None] | None = None
) -> Table:
    """A table of ``columns`` that fits ``width``: lower-priority columns are dropped (named in the
    caption) until it does; shown columns are never shrunk below their widest cell."""
    shown = list(columns)
    dropped: list[str] = []
    for candidate in sorted((c for c in columns if c.priority > 0), key=lambda c: -c.priority):
        if table_width(c.fit_width for c in shown) <= width:
            break
        shown.remove(candidate)
        dropped.append(candidate.header)
    fits = table_width(c.fit_width for c in shown) <= width
    caption = f"left out at {width} columns: {', '.join(dropped)} (--json has every field)" if dropped else None
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, caption_justify="left")
    for column in shown:
        if column.wrap or (column.key and not fits and column.justify == "left"):
            table.add_column(column.header, justify=column.justify, overflow="fold")
        else:
            table.add_column(column.header, justify=column.justify, no_wrap=True, min_width=column.width)
    rows = len(columns[0].cells) if columns else 0
    styles = row_styles or [None] * rows
    for i in range(rows):
        table.add_row(*(column.cells[i] for column in shown), style=styles[i])
    return table


# --------------------------------------------------------------------------- the commands' tables


def inspect_table(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], title: str, width: int) -> Table:
    """Active tasks: id, label and probability always; completions, the algorithm's ``fields`` (its score
    first), mean score as the width allows."""
    columns = [
        Column("task_id", [str(r["task_id"]) for r in rows], key=True),
        Column("label", [str(r["label"]) for r in rows], justify="left", key=True),
        Column("probability", [number(r["probability"], False) for r in rows]),
        Column("completions", [number(r["completions"], True) for r in rows], priority=1),
    ]
    columns += [
        Column(name, [number(float(r[name]), False) for r in rows], priority=2 + i) for i, name in enumerate(fields)
    ]
    columns.append(Column("mean_score", [number(r["mean_score"], False) for r in rows], priority=2 + len(fields)))
    return fitted_table(title, columns, width)


HEADLINE = (
    "num_completed",
    "num_created",
    "num_evicted",
    "num_scheduled",
    "num_active_tasks",
    "num_failures",
    "num_outcomes_for_evicted_tasks",
    "num_batches",
    "num_duplicate_batches",
)
"""The counters ``stats`` shows first, in this order (any other ``num_*`` counter follows)."""

LABEL_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    # (key, header, is a count), in priority order
    ("sampling_share", "share", False),
    ("samples", "samples", True),
    ("completions", "completions", True),
    ("success_rate", "success", False),
    ("sampling_probability", "p now", False),
    ("active_score", "score now", False),
    ("active", "active", True),
    ("evictions", "evicted", True),
    ("created", "created", True),
    ("score_ema", "score EMA", False),
    ("mean_score", "mean score", False),
    ("pool_share", "pool share", False),
)


def is_count(name: str) -> bool:
    """Whether a statistic is a count (shown as an integer)."""
    last = name.rsplit("/", 1)[-1]
    return last.startswith("num_") or last in {
        "samples", "completions", "evictions", "created", "active", "episodes", "successes", "stale",
    }  # fmt: skip


def label_table_view(
    table: Mapping[str, Mapping[str, float]], title: str, width: int, row_styles: Sequence[str | None] | None = None
) -> Table:
    """Label rows x statistic columns; the label column is never cut."""
    labels = list(table)
    present = [spec for spec in LABEL_COLUMNS if labels and spec[0] in table[labels[0]]]
    columns = [Column("label", labels, justify="left", key=True)]
    columns += [
        Column(header, [number(float(table[label][key]), count) for label in labels], priority=i + 1)
        for i, (key, header, count) in enumerate(present)
    ]
    return fitted_table(title, columns, width, row_styles)


def stats_tables(stats: Mapping[str, float], namespace: str, width: int) -> list[Table]:
    """``stats`` in three tables: headline counters, pool statistics, then one row per label."""
    headline = [name for name in HEADLINE if name in stats]
    headline += sorted(n for n in stats if n.startswith("num_") and n not in headline)
    pool = sorted(n for n in stats if n not in headline and not n.startswith("label/"))
    labels: dict[str, dict[str, float]] = {}
    for name, value in stats.items():
        if name.startswith("label/"):
            label, _, column = name[len("label/") :].rpartition("/")
            labels.setdefault(label, {})[column] = value

    def pairs(title: str, names: list[str]) -> Table:
        columns = [
            Column("name", names, justify="left", key=True),
            Column("value", [number(stats[n], is_count(n)) for n in names], key=True),
        ]
        return fitted_table(title, columns, width)

    tables = [pairs(f"counters of namespace {namespace!r}", headline), pairs("pool", pool)]
    if labels:
        tables.append(label_table_view(dict(sorted(labels.items())), "per label", width))
    return tables


def stage_table(
    names: Sequence[str], rules: Sequence[str], current: int, stats: Mapping[str, float], width: int
) -> Table:
    """A stage curriculum's stages: the current one marked, the stop rule (wrapping between words),
    and per-stage counts."""

    def counts(field_name: str, count: bool) -> list[str]:
        return [number(stats.get(f"stage/{name}/{field_name}", 0.0), count) for name in names]

    columns = [
        Column("#", [str(i) for i in range(len(names))]),
        Column("stage", [("> " if i == current else "") + n for i, n in enumerate(names)], justify="left", key=True),
        Column("rule", list(rules), justify="left", wrap=True),
        Column("episodes", counts("episodes", True), priority=1),
        Column("success rate", counts("success_rate", False), priority=2),
        Column("successes", counts("successes", True), priority=3),
        Column("stale", counts("stale", True), priority=4),
    ]
    return fitted_table("stages", columns, width)


def namespaces_table(infos: Sequence[Any], title: str, width: int) -> Table:
    """One row per namespace: its kind (the algorithm, or ``stage``), pool size (``-`` for stages), stage,
    episodes, schema (``-`` where meta holds none)."""
    columns = [
        Column("namespace", [i.namespace for i in infos], justify="left", key=True),
        Column("kind", [i.kind for i in infos], justify="left"),
        Column("tasks", [number(i.tasks, True) if i.stage is None else "-" for i in infos], priority=2),
        Column("stage", [f"{i.stage} of {i.num_stages}" if i.stage is not None else "-" for i in infos], priority=3),
        Column("episodes", [number(i.episodes, True) for i in infos], priority=1),
        Column("schema", [str(i.schema_version) if i.kind != "stage" else "-" for i in infos], priority=4),
    ]
    return fitted_table(title, columns, width)
