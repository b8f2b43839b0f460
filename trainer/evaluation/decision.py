"""How logits become an answer: fitted once on validation predictions (the temperature of a single-label model;
per-class Platt scaling and max-F1 thresholds of a multi-label one) and applied to every evaluated split. The fitted
values are config.json's `temperature`, or `task`, `calibration` and `thresholds` (checkpoint schema 6)."""

from __future__ import annotations

import numpy as np

from trainer.config import MULTI_LABEL, SINGLE_LABEL
from trainer.evaluation.probabilities import (
    calibrated_sigmoid,
    fit_platt,
    fit_temperature,
    per_sample_bce,
    per_sample_loss,
    tune_thresholds,
)
from trainer.evaluation.report import full_metrics, full_multilabel


def fit_decision(val: dict, multi_label: bool) -> dict:
    """How the app turns logits into an answer, fitted on validation predictions: the temperature (single-label),
    or per-class Platt scaling and the max-F1 thresholds on the calibrated probabilities (multi-label)."""
    if not multi_label:
        return {"task": SINGLE_LABEL, "temperature": fit_temperature(val["logits"], val["labels"])}
    calibration = fit_platt(val["logits"], val["labels"])
    thresholds = tune_thresholds(calibrated_sigmoid(val["logits"], calibration), val["labels"])
    return {"task": MULTI_LABEL, "calibration": calibration, "thresholds": thresholds}


def score_split(p: dict, n: int, decision: dict) -> dict:
    """Per-sample loss (added to p) and the full metrics of one split under the fitted decision; multi-label: the
    calibrated probabilities and the chosen labels are added to p too (predictions.parquet, samples)."""
    if decision["task"] != MULTI_LABEL:
        p["loss"] = per_sample_loss(p["logits"], p["labels"])
        return full_metrics(p, n, decision["temperature"])
    p["loss"] = per_sample_bce(p["logits"], p["labels"])
    p["probs"] = calibrated_sigmoid(p["logits"], decision["calibration"])
    p["pred"] = (p["probs"] >= np.asarray(decision["thresholds"])).astype(np.uint8)
    result = full_multilabel(p)
    result["per_class"]["threshold"] = list(decision["thresholds"])
    return result
