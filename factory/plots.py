"""PNG figures for the multi-step runs (SPIN iterations, self-distillation's models), beside their JSON records.

matplotlib (a core dependency) draws to files only (the Agg backend: no display, no GUI toolkit). A series may
have gaps (None): a metric that a row does not have is left out, never drawn as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

Series = dict[str, Sequence[float | None]]  # name -> one value per x label


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_panels(path: Path, labels: Sequence[str], panels: Sequence[tuple[str, Series]], title: str) -> Path | None:
    """One panel per (y label, series), the x axis shared (e.g. SFT, 0, 1, ...); None when nothing has a value."""
    panels = [(y, {k: v for k, v in s.items() if any(x is not None for x in v)}) for y, s in panels]
    panels = [(y, s) for y, s in panels if s]
    if not panels:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=100, squeeze=False)
    try:
        for ax, (ylabel, series) in zip(axes[0], panels, strict=True):
            for name, values in series.items():
                points = [(i, v) for i, v in enumerate(values) if v is not None]
                ax.plot([i for i, _ in points], [v for _, v in points], marker="o", label=name)
            ax.set_xticks(range(len(labels)), labels)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def bars(path: Path, labels: Sequence[str], values: Sequence[float | None], ylabel: str, title: str) -> Path | None:
    """One bar per label, its value written on it; labels without a value get no bar. None when none has one."""
    if all(v is None for v in values):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 2, 3.6), dpi=100)
    try:
        heights = [0.0 if v is None else v for v in values]
        drawn = ax.bar(range(len(labels)), heights, color="#4c72b0")
        for rect, v in zip(drawn, values, strict=True):
            ax.annotate("n/a" if v is None else f"{v:.3g}", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(labels)), labels, rotation=15, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
