"""Tables (markdown, mean ± std across seeds), the JSON file and the learning-curve plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = (
    ("final", "final", "{:.2f}"),
    ("auc", "AUC", "{:.2f}"),
    ("solved_tasks", "solved tasks", "{:.1f}"),
    ("impossible_share", "on impossible", "{:.2f}"),
    ("solved_share", "on solved", "{:.2f}"),
    ("presolved_share", "on pre-solved", "{:.2f}"),
)


def cell(stats: dict[str, float], fmt: str) -> str:
    return f"{fmt.format(stats['mean'])} ± {fmt.format(stats['std'])}"


def markdown_table(name: str, info: dict[str, Any]) -> str:
    """One benchmark's table: a row per sampler."""
    head = f"**{name}** ({info['tasks']} tasks, {info['impossible_tasks']} impossible; " \
           f"{info['episodes']:,} episodes x {info['seeds']} seeds; mean ± std)"  # fmt: skip
    lines = [head, "", "| sampler | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for row, stats in info["rows"].items():
        lines.append(f"| {row} | " + " | ".join(cell(stats[key], fmt) for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def write_json(out: Path, results: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "quality_envs.json"
    path.write_text(json.dumps(results, indent=1))
    return path


def plot(out: Path, results: dict[str, Any]) -> Path | None:
    """Mean learning curve of every sampler, one panel per benchmark; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    benches = results["benchmarks"]
    cols = min(4, len(benches))
    rows = (len(benches) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, info) in zip(axes.ravel(), benches.items(), strict=False):
        episodes = info["episodes"]
        for row, stats in info["rows"].items():
            curve = stats["curve"]["mean"]
            xs = [episodes * (i + 1) / len(curve) for i in range(len(curve))]
            style = "--" if "uniform" in row else ":" if "oracle" in row else "-"
            ax.plot(xs, curve, style, label=row, linewidth=1.4)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("episodes", fontsize=8)
        ax.set_ylabel("performance", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(benches):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * ((len(labels) + 3) // 4), 1, 1))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "quality_envs.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
