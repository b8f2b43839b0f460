"""Classification report: accuracy, macro/weighted P/R/F1, per-class P/R/F1/specificity/support, confusion."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy, precision/recall/F1 (macro and weighted), balanced accuracy, per-class precision, " \
               "recall, F1, specificity and support, and the confusion matrix (rows = true, cols = predicted)."
_KWARGS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_classes (int): number of classes, so classes absent from the data still get a row and column.
Returns:
    dict with accuracy, balanced_accuracy, {precision,recall,f1}_{macro,weighted}, per_class, confusion_matrix.
"""


class ClassificationReport(evaluate.Metric):
    """sklearn's precision_recall_fscore_support + confusion_matrix as an evaluate module."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, num_classes: int) -> dict:
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        y_pred, y_true = np.asarray(predictions), np.asarray(references)
        labels = list(range(num_classes))
        cm = confusion_matrix(y_true, y_pred, labels=labels)
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        total = cm.sum()
        fp = cm.sum(axis=0) - np.diag(cm)
        tn = total - cm.sum(axis=1) - fp
        specificity = np.divide(tn, tn + fp, out=np.zeros(num_classes), where=(tn + fp) > 0)
        present = s > 0  # macro averages over the classes that occur in the references (as sklearn's default)
        weights = s / max(s.sum(), 1)
        out = {"accuracy": float(np.trace(cm) / max(total, 1)),
               "balanced_accuracy": float(r[present].mean()) if present.any() else 0.0}
        for name, v in (("precision", p), ("recall", r), ("f1", f)):
            out[f"{name}_macro"] = float(v[present].mean()) if present.any() else 0.0
            out[f"{name}_weighted"] = float((v * weights).sum())
        out["per_class"] = {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
                            "specificity": specificity.tolist(), "support": s.astype(int).tolist()}
        out["confusion_matrix"] = cm.tolist()
        return out
