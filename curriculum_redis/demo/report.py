"""What the demo found, printed and plotted: the report, the summary tables, the redis-cli lines."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import redis
from pydantic import BaseModel, Field
from rich import box
from rich.console import Console
from rich.table import Table

from curriculum_redis.config import CurriculumConfig
from curriculum_redis.demo.server import EmbeddedRedis
from curriculum_redis.demo.student import KINDS, TaskKind, label_kind
from curriculum_redis.store.connection import client_from_url
from curriculum_redis.store.keys import NamespaceKeys
from curriculum_redis.store.redis import RedisStore
from curriculum_redis.store.url import redact
from curriculum_redis.tables import label_table_view


class LabelRow(BaseModel):
    kind: str | None
    sampling_share: float
    sampling_probability: float
    active_score: float
    success_rate: float
    completions: int
    evictions: int


class LearnerResult(BaseModel):
    mastered_levels: int
    level_success: list[float]
    learnable_share: float
    mastered_share: float
    impossible_share: float
    history: list[tuple[int, int]] = Field(default_factory=list)
    seconds: float = 0.0


class RedisInfo(BaseModel):
    url: str
    namespace: str
    embedded: bool
    data_dir: str | None = None
    server_binary: str | None = None
    rdb_path: str | None = None
    rdb_bytes: int | None = None


class Series(BaseModel):
    """Sampling share of each label in each interval of the run's history (curriculum_redis.history)."""

    seconds: list[float] = Field(default_factory=list)
    episodes: list[int] = Field(default_factory=list)
    share: dict[str, list[float]] = Field(default_factory=dict)


class DemoReport(BaseModel):
    algorithm: str
    episodes: int
    episodes_recorded: int
    workers: int
    tasks: int
    seed: int
    learning_rate: float
    seconds: float
    total_seconds: float
    labels: dict[str, LabelRow]
    impossible_share: float
    mastered_share: float
    final_impossible_probability: float
    curriculum: LearnerResult
    uniform: LearnerResult
    counters: dict[str, int]
    redis: RedisInfo
    plot: str | None
    series: Series


def shares(counts: dict[TaskKind, float]) -> tuple[float, float, float]:
    """The learnable, mastered and impossible shares of ``counts``."""
    total = sum(counts.values()) or 1.0
    return counts["learnable"] / total, counts["mastered"] / total, counts["impossible"] / total


def kind_samples(table: dict[str, dict[str, float]]) -> dict[TaskKind, float]:
    """Samples per kind of task, from a per-label table."""
    counts: dict[TaskKind, float] = dict.fromkeys(KINDS, 0.0)
    for label, row in table.items():
        kind = label_kind(label)
        if kind is not None:
            counts[kind] += row["samples"]
    return counts


def label_rows(table: dict[str, dict[str, float]]) -> dict[str, LabelRow]:
    """The report's per-label rows: share of all samples, current probability, the algorithm's mean score,
    success, counts."""
    total = sum(row["samples"] for row in table.values()) or 1.0
    return {
        label: LabelRow(
            kind=label_kind(label),
            sampling_share=row["samples"] / total,
            sampling_probability=row["sampling_probability"],
            active_score=row["active_score"],
            success_rate=row["success_rate"],
            completions=int(row["completions"]),
            evictions=int(row["evictions"]),
        )
        for label, row in table.items()
    }


def busiest_task_key(config: CurriculumConfig) -> str | None:
    """The key of the task with the most completions, for the ``redis-cli`` lines."""
    assert config.redis_url is not None
    store = RedisStore.from_url(config.redis_url, config.namespace)
    try:
        snap = store.snapshot()
    finally:
        store.close()
    if not snap.size:
        return None
    return NamespaceKeys(config.namespace).task(int(snap.task_ids[int(np.argmax(snap.column("completions")))]))


def server_version(url: str) -> tuple[str, str, str | None]:
    """``(name, version, executable)`` from ``INFO server``: Valkey reports ``server_name:valkey`` and
    ``valkey_version`` (its ``redis_version`` is a compatibility number); Redis only ``redis_version``."""
    client = client_from_url(url)
    try:
        info: dict[str, Any] = dict(client.info("server"))
    finally:
        client.close()
    if "redis_version" not in info:  # a cluster client answers per node: {"host:port": {...}}
        info = next((v for v in info.values() if isinstance(v, dict)), {})
    name = str(info.get("server_name") or "redis")
    version = str(info.get(f"{name}_version") or info.get("redis_version") or "unknown")
    executable = info.get("executable")
    return name, version, str(executable) if executable else None


def describe_server(url: str, server: EmbeddedRedis | None) -> str:
    """What the demo runs on, e.g. ``started valkey-server 9.1.2 (/path/valkey-server, pid 42) on
    127.0.0.1:6400`` for its own server, ``using redis 7.0.15 at redis://db:6379/0`` for a given one."""
    try:
        name, version, executable = server_version(url)
    except redis.exceptions.RedisError as exc:
        return f"using {redact(url)} (INFO server failed: {exc})"
    if server is None:
        return f"using {name} {version} at {redact(url)}"
    binary = Path(executable).name if executable else f"{name}-server"
    where = f"{executable}, pid {server.pid}" if executable else f"pid {server.pid}"
    parts = urlsplit(url)
    return f"started {binary} {version} ({where}) on {parts.hostname}:{parts.port}"


def label_rich_table(rows: dict[str, LabelRow], title: str = "per-label statistics", width: int = 80) -> Table:
    """The per-label rows as a table that fits ``width`` (impossible tasks in red, mastered ones dim)."""
    data = {label: row.model_dump(exclude={"kind"}) for label, row in rows.items()}
    styles = ["red" if r.kind == "impossible" else ("dim" if r.kind == "mastered" else None) for r in rows.values()]
    return label_table_view(data, title, width, styles)


def print_summary(report: DemoReport, console: Console, task_key: str | None = None) -> None:
    console.print(label_rich_table(report.labels, width=console.width))
    comparison = Table(title=f"same budget: {report.episodes:,} episodes", box=box.SIMPLE_HEAD)
    comparison.add_column("")
    comparison.add_column(report.algorithm, justify="right")
    comparison.add_column("uniform", justify="right")
    ours, uniform = report.curriculum, report.uniform
    comparison.add_row(
        "levels mastered",
        f"{ours.mastered_levels}/{len(ours.level_success)}",
        f"{uniform.mastered_levels}/{len(uniform.level_success)}",
    )
    for level, (a, b) in enumerate(zip(ours.level_success, uniform.level_success, strict=True), start=1):
        comparison.add_row(f"  success on level {level}", f"{a:.2f}", f"{b:.2f}")
    for kind in ("learnable", "mastered", "impossible"):
        share = f"{kind}_share"
        comparison.add_row(f"episodes on {kind} tasks", f"{getattr(ours, share):.1%}", f"{getattr(uniform, share):.1%}")
    console.print(comparison)
    console.print(
        f"impossible tasks: {report.impossible_share:.1%} of the curriculum's episodes "
        f"(uniform: {report.uniform.impossible_share:.1%}); their sampling probability at the end: "
        f"{report.final_impossible_probability:.2%}"
    )
    rate = report.episodes_recorded / max(report.seconds, 1e-9)
    console.print(
        f"{report.algorithm} run: {report.seconds:.1f} s ({rate:,.0f} episodes/s with {report.workers} workers); "
        f"whole demo {report.total_seconds:.1f} s"
    )
    console.print("\n[bold]Inspect the state it left in Redis:[/]")
    for line in redis_cli_commands(report.redis, task_key):  # never wrapped: they are meant to be pasted
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def redis_cli_commands(info: RedisInfo, task_key: str | None = None) -> list[str]:
    """redis-cli lines that show the namespace (never with a password: ``--askpass`` prompts for it)."""
    parts = urlsplit(info.url)
    cli = ["redis-cli"]
    if parts.scheme == "unix":
        cli += ["-s", parts.path]
    else:
        cli += ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
        db = parts.path.strip("/")
        if db and db != "0":
            cli += ["-n", db]
    if parts.password is not None:
        cli.append("--askpass")
    if parts.scheme == "rediss":
        cli.append("--tls")
    prefix = " ".join(shlex.quote(p) for p in cli)
    keys = NamespaceKeys(info.namespace)
    lines = []
    if info.embedded and info.data_dir is not None:
        lines.append("# the demo's server has stopped and saved its RDB file; start it again on the same data:")
        binary = shlex.quote(info.server_binary or "redis-server")  # an RDB file loads in its own server or newer
        lines.append(f"{binary} --dir {shlex.quote(info.data_dir)} --port {parts.port} --save '' &")
    for key in (keys.meta, keys.counters, keys.labels):
        lines.append(f"{prefix} HGETALL {shlex.quote(key)}")
    if task_key is not None:
        lines.append(f"{prefix} HGETALL {shlex.quote(task_key)}")
    lines.append(f"{prefix} --scan --pattern {shlex.quote(keys.prefix + ':*')} | head")
    if info.embedded:
        lines.append(f"{prefix} SHUTDOWN NOSAVE   # when done")
    return lines


def plot_sampling_share(report: DemoReport, path: Path) -> Path | None:
    """A PNG of each label's sampling share over the run's history (drawn as ``curriculum-redis plot``
    draws it, by episodes) and of levels mastered, curriculum vs uniform.

    Returns None when matplotlib is not installed (the ``plot`` extra).
    """
    from curriculum_redis.plots import PlotError, draw_share, new_figure

    try:
        fig, (top, bottom) = new_figure(2, 8)
    except PlotError:
        return None
    series = report.series
    learnable = sorted(label for label, row in report.labels.items() if row.kind == "learnable")
    colors = _colormap(len(learnable))

    def style(label: str) -> dict[str, Any]:
        kind = label_kind(label)
        if kind == "impossible":
            return {"color": "tab:red", "linestyle": "--", "linewidth": 2}
        if kind == "mastered":
            return {"color": "tab:gray", "linestyle": ":", "linewidth": 2}
        return {"color": colors[learnable.index(label)] if label in learnable else None}

    draw_share(top, series.episodes, series.share, style, limit=len(series.share))
    top.set_ylabel("sampling share (per history interval)")
    top.set_title(f"{report.algorithm} curriculum: {report.episodes:,} episodes, {report.workers} workers")
    learners = ((report.algorithm, report.curriculum, "tab:blue"), ("uniform", report.uniform, "tab:orange"))
    for name, result, color in learners:
        if result.history:
            xs, ys = zip(*result.history, strict=True)
            bottom.step(xs, ys, where="post", label=name, color=color)
    bottom.set_xlabel("episodes")
    bottom.set_ylabel("levels mastered")
    bottom.set_ylim(-0.2, len(report.curriculum.level_success) + 0.2)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    bottom.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def _colormap(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.1 + 0.8 * i / max(n - 1, 1)) for i in range(n)]
