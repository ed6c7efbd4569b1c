"""PNG plots: training curves, confusion matrices and attention heatmaps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt  # noqa: E402


def history_panels(rows: Sequence[dict[str, Any]], monitor: str | None = None) -> list[str]:
    """The panels of the history plot: one per metric, its training and validation
    curves together (a validation-only metric such as val_bleu too), `monitor` (the
    metric that picks the best epoch) first."""
    keys = {k for row in rows for k in row if k not in ("epoch", "seconds", "learning_rate")}
    return sorted({k.removeprefix("val_") for k in keys},
                  key=lambda m: (monitor is None or monitor.removeprefix("val_") != m, m))


def plot_history(rows: Sequence[dict[str, Any]], path: Path, monitor: str | None = None) -> Path:
    """`history_panels` side by side, over the epochs (numbered from 1)."""
    metrics = history_panels(rows, monitor)
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5 * max(1, len(metrics)), 3.6))
    axes = [axes] if len(metrics) <= 1 else list(axes)
    epochs = [row["epoch"] for row in rows]
    for axis, metric in zip(axes, metrics):
        for key, style in ((metric, "o-"), (f"val_{metric}", "s--")):
            values = [row.get(key) for row in rows]
            if any(v is not None and v != "" for v in values):
                axis.plot(epochs, values, style, label="validation" if key.startswith("val_")
                          else "training")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path,
                   title: str = "confusion matrix") -> Path:
    """Counts per (true, predicted) cell, darker for more."""
    size = max(3.5, 0.6 * len(labels) + 2)
    fig, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(j, i, str(count), ha="center", va="center",
                      color="white" if count > peak / 2 else "black")
    fig.colorbar(image, ax=axis, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_attention(source_pieces, target_pieces, weights, path: Path) -> Path:
    """A heatmap of attention weights: source pieces across, target pieces down."""
    fig, axis = plt.subplots(figsize=(max(4.0, 0.45 * len(source_pieces) + 2),
                                      max(3.0, 0.4 * len(target_pieces) + 1.5)))
    image = axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    axis.set_xticks(range(len(source_pieces)), source_pieces, rotation=60, ha="right")
    axis.set_yticks(range(len(target_pieces)), target_pieces)
    axis.set_xlabel("source pieces")
    axis.set_ylabel("target pieces")
    fig.colorbar(image, ax=axis, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
