"""The metrics of one split, computed by our local `evaluate` modules (evaluation/metrics/)."""

from __future__ import annotations

import numpy as np

from trainer.evaluation.metrics import load_metric
from trainer.evaluation.probabilities import per_sample_bce, per_sample_loss, sigmoid, softmax


def quick_metrics(pred: dict, num_classes: int) -> dict:
    """The per-epoch validation numbers: accuracy, macro F1 and loss (multi-label: subset accuracy, macro F1 at 0.5,
    BCE and mAP)."""
    if pred["labels"].ndim == 2:
        return quick_multilabel(pred)
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
    values = np.asarray([str(g) for g in groups], dtype=object)[pred["index"]]
    out = {}
    for value in sorted(set(values)):
        rows = values == value
        part = {"logits": pred["logits"][rows], "labels": pred["labels"][rows]}
        out[value] = {**quick_metrics(part, num_classes), "num_samples": int(rows.sum())}
    return out


def quick_multilabel(pred: dict) -> dict:
    """Multi-label validation numbers during training (plain sigmoid, every threshold 0.5): subset accuracy, macro
    F1, mean BCE and mAP."""
    probs = sigmoid(pred["logits"])
    report = load_metric("multilabel_report").compute(
        predictions=(probs >= 0.5).astype(np.int8), references=pred["labels"].astype(np.int8), scores=probs)
    return {"accuracy": report["subset_accuracy"], "f1_macro": report["f1_macro"], "map": report["map"],
            "loss": float(per_sample_bce(pred["logits"], pred["labels"]).mean())}


def full_multilabel(pred: dict) -> dict:
    """Everything eval/ reports for one multi-label split, from its calibrated `probs`, the labels chosen at the
    tuned thresholds (`pred`) and the per-sample `loss` (trainer.evaluation.decision.score_split adds all three):
    headline metrics, per class (AP, P/R/F1, support, TP/FP/FN/TN) and the reliability before/after Platt scaling."""
    logits, targets, probs = pred["logits"], pred["labels"].astype(np.int8), pred["probs"]
    report = load_metric("multilabel_report").compute(predictions=pred["pred"].astype(np.int8), references=targets,
                                                      scores=probs)
    at_half = load_metric("multilabel_report").compute(
        predictions=(probs >= 0.5).astype(np.int8), references=targets, scores=probs)
    calib = load_metric("calibration")
    before = calib.compute(probabilities=sigmoid(logits), references=targets)
    after = calib.compute(probabilities=probs, references=targets)
    headline = {k: v for k, v in report.items() if k != "per_class"}
    headline.update({"accuracy": report["subset_accuracy"], "f1_macro_at_0.5": at_half["f1_macro"],
                     "f1_micro_at_0.5": at_half["f1_micro"], "loss": float(pred["loss"].mean()),
                     "num_samples": int(len(targets)), "labels_per_sample": float(targets.sum(1).mean()),
                     "ece": before["ece"], "ece_calibrated": after["ece"], "nll": before["nll"],
                     "nll_calibrated": after["nll"]})
    return {"metrics": headline, "per_class": report["per_class"],
            "reliability": {"before": before["reliability"], "after": after["reliability"]}}
