"""Figures people would rather look at than read: confusion matrix, reliability diagram and the LR range test
(matplotlib Figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(width: float, height: float):
    """A matplotlib Figure that is not registered with pyplot (no global state, safe in threads)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def confusion_matrix_figure(matrix, labels: list[str], normalize: bool = False, title: str = ""):
    """Rows = true, columns = predicted; counts or row-normalised recall, each cell annotated."""
    cm = np.asarray(matrix, dtype=np.float64)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    size = min(14.0, 2.5 + 0.55 * n)
    fig = _figure(size, size * 0.9)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else max(cm.max(), 1))
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    if n <= 30:  # beyond that the numbers are unreadable; the colours still tell the story
        threshold = cm.max() / 2
        for i in range(n):
            for j in range(n):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
    return fig


def reliability_figure(reliability: dict, after: str = "temperature-scaled"):
    """Accuracy vs confidence per bin, before and after calibration (named `after`), with the diagonal."""
    fig = _figure(5, 4.5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for key, name in (("before", "raw"), ("after", after)):
        bins = reliability.get(key)
        if bins:
            conf = [b for b, c in zip(bins["confidence"], bins["count"], strict=True) if c]
            acc = [a for a, c in zip(bins["accuracy"], bins["count"], strict=True) if c]
            ax.plot(conf, acc, "o-", label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title="reliability")
    ax.legend(loc="upper left")
    return fig


def lr_find_figure(lrs: list[float], losses: list[float], suggestion: float):
    """Smoothed training loss against the learning rate (log axis), the suggested LR marked."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="LR range test")
    ax.legend(loc="upper left")
    return fig


def save_png(fig, path: Path) -> None:
    """Write a Figure as PNG (temp file + rename)."""
    import os

    tmp = Path(f"{path}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
