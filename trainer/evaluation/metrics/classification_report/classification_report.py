"""Classification report: accuracy, macro/weighted P/R/F1, balanced accuracy, per-class stats, confusion."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

_DESCRIPTION = (
    "Accuracy, balanced accuracy, precision/recall/F1 (macro and support-weighted), per-class precision, "
    "recall, F1, specificity and support, and the confusion matrix (rows = true class, columns = predicted "
    "class). Every ratio with a zero denominator is 0. Macro averages run over the classes that occur in the "
    "references or the predictions (scikit-learn's default label set); balanced accuracy is the mean recall "
    "over the classes that occur in the references (scikit-learn's balanced_accuracy_score)."
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
    predictions (`list` of `int`): predicted class ids in [0, num_classes).
    references (`list` of `int`): true class ids in [0, num_classes).
    num_classes (`int`): number of classes, so classes absent from the data still get a row and a column.
Returns:
    accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro, precision_weighted, recall_weighted,
    f1_weighted (floats); per_class = {precision, recall, f1, specificity, support} (lists of length
    num_classes); confusion_matrix (num_classes x num_classes list of lists, rows = true, cols = predicted).
    Everything is plain Python (JSON-serialisable).
Examples:
    >>> metric = load_metric("classification_report")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], num_classes=3)["accuracy"]
    0.6666666666666666
"""


def _check_labels(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> None:
    """Raise ValueError unless there is data and every id lies in [0, num_classes)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if y_true.size == 0:
        raise ValueError("classification_report needs at least one sample")
    both = np.concatenate([y_true, y_pred])
    if both.min() < 0 or both.max() >= num_classes:
        raise ValueError(f"class ids must lie in [0, {num_classes}), got [{both.min()}, {both.max()}]")


def _specificity(cm: np.ndarray) -> np.ndarray:
    """Per-class TN / (TN + FP) from a confusion matrix (rows = true), 0 where undefined."""
    fp = cm.sum(axis=0) - np.diag(cm)
    negatives = cm.sum() - cm.sum(axis=1)  # TN + FP: samples whose true class is another one
    return np.divide(negatives - fp, negatives, out=np.zeros(len(cm)), where=negatives > 0)


class ClassificationReport(evaluate.Metric):
    """scikit-learn's confusion_matrix and precision_recall_fscore_support wrapped as an `evaluate` metric."""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its inputs: one predicted and one true class id per sample."""
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions: list[int], references: list[int], num_classes: int) -> dict:
        """Headline scores, per-class lists and the confusion matrix over classes 0..num_classes-1."""
        y_pred = np.asarray(predictions, dtype=np.int64)
        y_true = np.asarray(references, dtype=np.int64)
        num_classes = int(num_classes)
        _check_labels(y_true, y_pred, num_classes)
        labels = np.arange(num_classes)
        # scikit-learn does the counting; labels= keeps absent classes as rows/columns of zeros
        cm = confusion_matrix(y_true, y_pred, labels=labels)
        p, r, f, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0
        )
        seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # sklearn's default labels: in references or predictions
        in_refs = support > 0
        out = {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(r[in_refs].mean()),  # == sklearn.metrics.balanced_accuracy_score
        }
        for name, values in (("precision", p), ("recall", r), ("f1", f)):
            out[f"{name}_macro"] = float(values[seen].mean())
            out[f"{name}_weighted"] = float((values * support).sum() / support.sum())
        out["per_class"] = {
            "precision": p.tolist(),
            "recall": r.tolist(),
            "f1": f.tolist(),
            "specificity": _specificity(cm).tolist(),
            "support": [int(s) for s in support],
        }
        out["confusion_matrix"] = cm.tolist()
        return out
