"""Probabilities: softmax with a temperature, per-sample loss, temperature scaling; for multi-label models one
sigmoid per class with per-class Platt scaling, and per-class decision thresholds tuned on validation."""

from __future__ import annotations

import numpy as np
import torch


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, in float64 for stable calibration maths."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def per_sample_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each sample (no smoothing): what 'top loss' sorts by."""
    p = softmax(logits)
    return -np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising validation NLL, fitted with LBFGS; 1.0 when the
    fit leaves (0.01, 100) or ends with a higher NLL than T = 1 (the NLL after is never above the NLL before)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not (np.isfinite(t) and 0.01 < t < 100):
        return 1.0
    nll = [float(torch.nn.functional.cross_entropy(z / value, y)) for value in (t, 1.0)]
    return t if nll[0] <= nll[1] else 1.0  # never worse than no scaling on the data it was fitted to


PLATT = "platt"
PLATT_BOUNDS = {"scale": (0.01, 100.0), "bias": (-50.0, 50.0)}
PLATT_L2 = 1e-4  # pull towards the identity (scale 1, bias 0): a class with few validation positives stays sane


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Element-wise logistic function in float64 (no overflow for large |z|)."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def calibrated_sigmoid(logits: np.ndarray, calibration: dict | None) -> np.ndarray:
    """Per-class probabilities sigmoid(scale * logit + bias) of multi-label logits (plain sigmoid without one)."""
    z = np.asarray(logits, dtype=np.float64)
    if not calibration:
        return sigmoid(z)
    return sigmoid(z * np.asarray(calibration["scale"]) + np.asarray(calibration["bias"]))


def per_sample_bce(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Binary cross-entropy of each sample, averaged over its classes (no smoothing): what 'top loss' sorts by."""
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    return (np.logaddexp(0.0, z) - y * z).mean(axis=1)


def fit_platt(logits: np.ndarray, targets: np.ndarray) -> dict:
    """Per-class Platt scaling (Platt 1999): the scale and bias per class minimising validation BCE of
    sigmoid(scale * logit + bias), fitted jointly with LBFGS; a class whose validation rows are all positive or all
    negative keeps the identity. The config.json `calibration` block."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(targets, dtype=torch.float64)
    both = ((y.sum(0) > 0) & (y.sum(0) < len(y))).double()  # classes with positives and negatives in val
    params = torch.zeros(2, z.shape[1], dtype=torch.float64, requires_grad=True)  # log scale, bias
    opt = torch.optim.LBFGS([params], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        scaled = z * params[0].exp() + params[1]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(scaled, y, reduction="none").mean(0)
        loss = (bce * both).sum() / both.sum().clamp(min=1) + PLATT_L2 * (params ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    scale, bias = params.detach()[0].exp(), params.detach()[1]
    ok = torch.isfinite(scale) & torch.isfinite(bias) & (both > 0)
    # the bounds checkpoint readers accept (trainer/checkpoint/read.py): a near-constant logit can ask for more
    scale = torch.where(ok, scale, 1.0).clamp(PLATT_BOUNDS["scale"][0], PLATT_BOUNDS["scale"][1])
    bias = torch.where(ok, bias, 0.0).clamp(PLATT_BOUNDS["bias"][0], PLATT_BOUNDS["bias"][1])
    return {"method": PLATT, "scale": scale.tolist(), "bias": bias.tolist()}


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, default: float = 0.5) -> list[float]:
    """Per class, the probability threshold (predict the class when p >= it) with the highest F1 on validation
    (scikit-learn's precision_recall_curve; the lowest such threshold on ties); `default` for a class without
    validation positives."""
    from sklearn.metrics import precision_recall_curve

    out = []
    for c in range(probs.shape[1]):
        y = targets[:, c]
        if y.sum() == 0:
            out.append(default)
            continue
        precision, recall, thresholds = precision_recall_curve(y, probs[:, c])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        out.append(float(thresholds[int(np.argmax(f1[:-1]))]))  # the last (P=1, R=0) point has no threshold
    return out
