"""The metrics of one split, computed by our local `evaluate` modules (evaluation/metrics/)."""

from __future__ import annotations

from trainer.evaluation.calibration import per_sample_loss, softmax
from trainer.evaluation.metrics import load_metric


def quick_metrics(pred: dict, num_classes: int) -> dict:
    """The per-epoch validation numbers: accuracy, macro F1 and loss."""
    report = load_metric("classification_report").compute(
        predictions=pred["logits"].argmax(1), references=pred["labels"], num_classes=num_classes)
    loss = float(per_sample_loss(pred["logits"], pred["labels"]).mean())
    return {"accuracy": report["accuracy"], "f1_macro": report["f1_macro"], "loss": loss}


def full_metrics(pred: dict, num_classes: int, temperature: float) -> dict:
    """Everything eval/ reports for one split: headline metrics, per class, confusion, calibration."""
    logits, labels = pred["logits"], pred["labels"]
    report = load_metric("classification_report").compute(
        predictions=logits.argmax(1), references=labels, num_classes=num_classes)
    k = min(5, num_classes)
    topk = load_metric("top_k_accuracy").compute(scores=logits, references=labels, k=k)
    calib = load_metric("calibration")
    before = calib.compute(probabilities=softmax(logits), references=labels)
    after = calib.compute(probabilities=softmax(logits, temperature), references=labels)
    headline = {key: report[key] for key in report if key not in ("per_class", "confusion_matrix")}
    headline.update(topk)
    headline.update({"loss": float(per_sample_loss(logits, labels).mean()), "num_samples": int(len(labels)),
                     "ece": before["ece"], "ece_calibrated": after["ece"], "nll": before["nll"],
                     "nll_calibrated": after["nll"], "temperature": temperature})
    return {"metrics": headline, "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
            "reliability": {"before": before["reliability"], "after": after["reliability"]}}




def group_metrics(pred: dict, groups: list, num_classes: int) -> dict:
    """{group value: accuracy, macro F1, loss, num_samples} over the rows of each value (groups: one per row)."""
    import numpy as np

    values = np.asarray([str(g) for g in groups], dtype=object)[pred["index"]]
    out = {}
    for value in sorted(set(values)):
        rows = values == value
        part = {"logits": pred["logits"][rows], "labels": pred["labels"][rows]}
        out[value] = {**quick_metrics(part, num_classes), "num_samples": int(rows.sum())}
    return out
