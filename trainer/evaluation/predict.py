"""Predictions gathered across processes (every sample once), and forward latency."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch


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


@torch.no_grad()
def measure_latency(model: torch.nn.Module, input_size: tuple, device, runs: int = 20) -> dict:
    """Median and p95 single-input forward latency (ms) and batch-32 throughput (img/s) on `device`."""
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
    return {"latency_ms_batch1": 1000 * float(np.median(times)),
            "latency_ms_p95_batch1": 1000 * float(np.percentile(times, 95)), "throughput_img_s_batch32": 32 / batch_s,
            "device": str(device), "threads": torch.get_num_threads()}
