"""The Validation-metrics tab's views of a multi-label checkpoint (schema 6), read from its eval/ artifacts: the
per-class one-vs-rest confusion (TP/FP/FN/TN) in place of one matrix."""

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
