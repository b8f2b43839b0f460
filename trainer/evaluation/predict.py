"""Predictions gathered across processes (every sample once), and forward latency."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from trainer.hardware import usable_cores


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


def device_name(device) -> str:
    """The hardware a latency was measured on: the GPU's name, or the CPU's model name and the cores this process
    may use (its affinity mask, not os.cpu_count())."""
    import platform

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:  # Linux names the CPU model here; platform.processor() is often empty there
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({usable_cores()} usable cores, {torch.get_num_threads()} torch threads)"


def latency_text(metrics: dict) -> str:
    """What measure_latency recorded, for people: 'p50 X ms · p95 Y ms (within the N ms budget) on <hardware>'
    ('' when the metrics have no latency)."""
    if "latency_ms_batch1" not in metrics:
        return ""
    p95 = metrics.get("latency_ms_p95_batch1")
    text = f"p50 {metrics['latency_ms_batch1']:.1f} ms" + (f" · p95 {p95:.1f} ms" if p95 is not None else "")
    budget = metrics.get("latency_budget_ms")
    if budget is not None:
        text += f" ({'within' if metrics.get('within_latency_budget') else 'over'} the {budget:g} ms budget)"
    where = metrics.get("latency_hardware") or metrics.get("device")
    return text + (f" on {where}" if where else "")


@torch.no_grad()
def measure_latency(model: torch.nn.Module, prepare: Callable[[], torch.Tensor], device, runs: int = 20) -> dict:
    """p50 and p95 single-input latency (ms) of prepare() (the preprocessing) + forward, and batch-32 throughput.

    prepare returns one model-ready input (1, …) from a raw one each time it is called, so its cost is counted.
    """
    model.eval()
    x1 = prepare().to(device)
    xb = x1.expand(32, *x1.shape[1:]).contiguous()
    for _ in range(3):
        model(prepare().to(device))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model(prepare().to(device))
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    model(xb)
    batch_s = time.perf_counter() - t
    return {"latency_ms_batch1": 1000 * float(np.median(times)),
            "latency_ms_p95_batch1": 1000 * float(np.percentile(times, 95)), "throughput_img_s_batch32": 32 / batch_s,
            "latency_hardware": device_name(device), "device": str(device), "threads": torch.get_num_threads()}
