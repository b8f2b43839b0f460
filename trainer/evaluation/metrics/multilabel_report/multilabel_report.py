"""Multi-label report: mAP, micro/macro precision/recall/F1, subset accuracy, Hamming loss, per-class AP/P/R/F1,
support and TP/FP/FN/TN."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

_DESCRIPTION = (
    "Multi-label classification scores from scikit-learn: mean average precision over the classes with at least "
    "one positive (AP per class from the scores; macro mean, and micro over every (sample, class) pair), "
    "precision/recall/F1 micro and macro over the multi-hot predictions (zero_division=0), subset accuracy "
    "(every class of a sample right: scikit-learn's accuracy_score on multi-label data), Hamming loss (the share "
    "of wrong (sample, class) decisions), and per class: AP (None without positives), precision, recall, F1, "
    "support (positives) and the one-vs-rest confusion counts TP/FP/FN/TN (multilabel_confusion_matrix)."
)
_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""
_KWARGS = """
Args:
    predictions (`list` of `list` of `int`): multi-hot predicted labels, one row of num_classes 0/1 per sample.
    references (`list` of `list` of `int`): multi-hot true labels, same shape.
    scores (`list` of `list` of `float`): a score per class (probabilities or logits) for average precision.
Returns:
    map, map_micro, subset_accuracy, hamming_loss, precision_micro, recall_micro, f1_micro, precision_macro,
    recall_macro, f1_macro (floats), per_class = {ap, precision, recall, f1, support, tp, fp, fn, tn} (lists of
    length num_classes). Everything is plain Python (JSON-serialisable).
Examples:
    >>> metric = load_metric("multilabel_report")
    >>> metric.compute(predictions=[[1, 0], [1, 1]], references=[[1, 0], [0, 1]], scores=[[.9, .2], [.6, .7]])[
    ...     "subset_accuracy"]
    0.5
"""


def _arrays(predictions, references, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_pred, y_true, scores) as (n, C) arrays, after shape and value checks."""
    y_pred = np.asarray(predictions, dtype=np.int64)
    y_true = np.asarray(references, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape[0] == 0 or y_true.shape[1] < 1:
        raise ValueError("multilabel_report needs at least one sample of multi-hot rows (n, num_classes)")
    if y_pred.shape != y_true.shape or s.shape != y_true.shape:
        raise ValueError(f"predictions {y_pred.shape}, references {y_true.shape} and scores {s.shape} must match")
    if not np.isin(y_true, (0, 1)).all() or not np.isin(y_pred, (0, 1)).all():
        raise ValueError("predictions and references must be multi-hot (0/1)")
    return y_pred, y_true, s


class MultilabelReport(evaluate.Metric):
    """scikit-learn's multi-label scores wrapped as an `evaluate` metric."""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its inputs: multi-hot predictions and references, per-class scores."""
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("int8")),
                "references": datasets.Sequence(datasets.Value("int8")),
                "scores": datasets.Sequence(datasets.Value("float32")),
            }),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#multilabel-ranking-metrics"],
        )

    def _compute(self, predictions, references, scores) -> dict:
        """Headline scores and per-class lists over the classes 0..num_classes-1."""
        y_pred, y_true, s = _arrays(predictions, references, scores)
        support = y_true.sum(0)
        has_pos = support > 0
        # AP is undefined for a class without positives (scikit-learn warns and returns 0): left out of the mean
        ap = [float(average_precision_score(y_true[:, c], s[:, c])) if has_pos[c] else None
              for c in range(y_true.shape[1])]
        out = {
            "map": float(np.mean([a for a in ap if a is not None])) if has_pos.any() else 0.0,
            "map_micro": float(average_precision_score(y_true.ravel(), s.ravel())) if has_pos.any() else 0.0,
            "subset_accuracy": float(accuracy_score(y_true, y_pred)),
            "hamming_loss": float(hamming_loss(y_true, y_pred)),
        }
        for average in ("micro", "macro"):
            p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
            out.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
        cm = multilabel_confusion_matrix(y_true, y_pred)  # (C, 2, 2): [[tn, fp], [fn, tp]]
        out["per_class"] = {
            "ap": ap, "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
            "support": [int(v) for v in support],
            "tp": cm[:, 1, 1].tolist(), "fp": cm[:, 0, 1].tolist(), "fn": cm[:, 1, 0].tolist(),
            "tn": cm[:, 0, 0].tolist(),
        }
        return out
