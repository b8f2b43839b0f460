"""The Validation-metrics tab's views of a multi-label checkpoint (schema 6), read from its eval/ artifacts: the
per-class one-vs-rest confusion (TP/FP/FN/TN) in place of one matrix, and its calibration line."""

from __future__ import annotations

import numpy as np
import pandas as pd

COUNTS = ("tp", "fp", "fn", "tn")
NOTE = ("A multi-label model decides every class on its own, so there is no single (true → predicted) matrix: each "
        "row counts one class's one-vs-rest decisions at its tuned threshold. No per-cell samples.")


def per_class_confusion(confusion: dict):
    """eval/multilabel_confusion.json as a table, one row per label: TP, FP, FN, TN, then the precision and recall
    they give; styled as a heat map per column."""
    labels = list(confusion.get("labels") or [])
    counts = {k.upper(): np.asarray(confusion.get(k) or [0] * len(labels), dtype=np.int64) for k in COUNTS}
    frame = pd.DataFrame({"label": labels, **counts})
    tp, fp, fn = counts["TP"], counts["FP"], counts["FN"]
    frame["precision"] = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=tp + fp > 0).round(4)
    frame["recall"] = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=tp + fn > 0).round(4)
    return frame.style.background_gradient(cmap="Blues", subset=["TP", "TN"]).background_gradient(
        cmap="Reds", subset=["FP", "FN"]).format(precision=4, subset=["precision", "recall"])


def calibration_markdown(metrics: dict) -> str:
    """ECE/NLL before → after per-class Platt scaling, in one line."""
    if "ece" not in metrics:
        return "No calibration numbers in eval/metrics.json."
    return (f"Per-class Platt scaling takes the expected calibration error (over every sample × class probability) "
            f"from **{metrics['ece']:.4f}** to **{metrics.get('ece_calibrated', float('nan')):.4f}** and the NLL "
            f"(binary cross-entropy) from {metrics.get('nll', float('nan')):.4f} to "
            f"{metrics.get('nll_calibrated', float('nan')):.4f}. The app applies it to every prediction, then each "
            "class's threshold.")
