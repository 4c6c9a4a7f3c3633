"""Pictures of a run from its history (matplotlib, the ``plot`` extra): ``curriculum-redis plot`` and the
demo draw with the same functions, by episodes of the shared clock, so a short run gets a full curve."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curriculum_redis.errors import CurriculumError
from curriculum_redis.history import History, read_history
from curriculum_redis.store.connection import Client

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MAX_LINES", "draw_share", "plot_history", "plot_namespace", "top_labels"]

MAX_LINES = 10
"""Labels drawn one line each; the rest are summed into one "other" line, so the legend stays readable."""

Style = Callable[[str], dict[str, Any]]


class PlotError(CurriculumError):
    """No picture can be drawn: matplotlib is missing, or the namespace has no history yet."""


def new_figure(rows: int, height: float) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotError("plotting needs matplotlib: pip install 'curriculum_redis[plot]'") from exc
    fig = Figure(figsize=(12, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def top_labels(share: Mapping[str, Sequence[float]], limit: int = MAX_LINES) -> list[str]:
    """The ``limit`` labels with the largest summed share, in label order."""
    ranked = sorted(share, key=lambda label: -sum(share[label]))[:limit]
    return sorted(ranked)


def draw_share(
    ax: Axes,
    episodes: Sequence[int],
    share: Mapping[str, Sequence[float]],
    style: Style | None = None,
    limit: int = MAX_LINES,
) -> None:
    """Each label's share of the tasks drawn in each interval; beyond ``limit`` labels, one "other" line."""
    shown = top_labels(share, limit)
    marker = "o" if len(episodes) < 20 else None
    for label in shown:
        ax.plot(episodes, share[label], label=label, marker=marker, **(style(label) if style else {}))
    rest = [share[label] for label in share if label not in shown]
    if rest:
        other = [sum(values) for values in zip(*rest, strict=True)]
        ax.plot(episodes, other, label=f"other ({len(rest)} labels)", color="black", linestyle=":")
    ax.set_ylabel("sampling share")
    ax.set_ylim(0.0, 1.0)
    _legend(ax)


def _legend(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.grid(alpha=0.3)


def plot_history(history: History, path: Path, title: str) -> Path:
    """Sampling share, success per label, and pool churn over episodes, as one PNG at ``path``."""
    if len(history) < 2:
        raise PlotError(
            f"the history holds {len(history)} point(s): it needs 2 (an entry is written every "
            "history_every episodes; see curriculum_redis.history.set_interval)"
        )
    fig, (share_ax, success_ax, churn_ax) = new_figure(3, 10)
    episodes = history.episodes
    share = history.share()
    draw_share(share_ax, episodes, share)
    share_ax.set_title(title)
    success = history.success()
    marker = "o" if len(episodes) < 20 else None
    for label in top_labels(share):
        values = [float("nan") if v is None else v for v in success[label]]
        success_ax.plot(episodes, values, label=label, marker=marker)
    success_ax.set_ylabel("success rate")
    success_ax.set_ylim(-0.02, 1.02)
    _legend(success_ax)
    churn_ax.plot(episodes, history.churn(), color="tab:red", label="evicted / pool size")
    churn_ax.set_ylabel("pool churn per interval")
    churn_ax.set_xlabel("episodes (shared clock)")
    _legend(churn_ax)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


def plot_namespace(client: Client, namespace: str, path: Path) -> Path:
    """``plot_history`` of a namespace read on ``client``."""
    history = read_history(client, namespace)
    last = history.points[-1].episode if history.points else 0
    return plot_history(history, path, f"namespace {namespace!r}: {last:,} episodes, {len(history)} history points")
