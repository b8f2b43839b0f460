"""Evaluation: gathered predictions across processes, our local `evaluate` modules, temperature scaling."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from trainer.metrics import load_metric


@torch.no_grad()
def predict(accelerator, model: torch.nn.Module, loader, preprocess: Callable) -> dict:
    """Logits, labels and row indices of every sample exactly once, sorted by row index (any process count)."""
    model.eval()
    logits, labels, index = [], [], []
    for x, y, i in loader:
        with accelerator.autocast():
            out = model(preprocess(x)).float()
        out, y, i = accelerator.gather_for_metrics((out, y, i))  # drops the padding duplicates
        logits.append(out.cpu())
        labels.append(y.cpu())
        index.append(i.cpu())
    order = torch.cat(index).argsort()
    return {"logits": torch.cat(logits)[order].numpy(), "labels": torch.cat(labels)[order].numpy(),
            "index": torch.cat(index)[order].numpy()}


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
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising validation NLL, fitted with LBFGS."""
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
    return t if np.isfinite(t) and 0.01 < t < 100 else 1.0


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


@torch.no_grad()
def measure_latency(model: torch.nn.Module, input_size: tuple, device, runs: int = 20) -> dict:
    """Median single-image forward latency (ms) and batch-32 throughput (img/s) on `device`."""
    model.eval()
    x1 = torch.randn(1, *input_size, device=device)
    xb = torch.randn(32, *input_size, device=device)
    for _ in range(3):
        model(x1)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model(x1)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    model(xb)
    batch_s = time.perf_counter() - t
    return {"latency_ms_batch1": 1000 * float(np.median(times)), "throughput_img_s_batch32": 32 / batch_s,
            "device": str(device), "threads": torch.get_num_threads()}
