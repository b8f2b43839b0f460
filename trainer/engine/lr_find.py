"""The learning-rate range test (fastai's `lr_find`): an exponential LR sweep on a copy of the model, the smoothed
loss per step, a stop on divergence, and a suggested LR — written to <out>/lr_find/ as JSON and a plot.

Checked before writing this: timm and Accelerate have no LR finder; `torch-lr-finder` (PyPI) runs its own training
loop, which would bypass Accelerate's prepared model and loader (N processes, autocast) and our preprocessing.
The sweep itself is a dozen lines; it runs on its own copy of the model and optimizer, and the caller frees what
Accelerate prepared for it, so the real run starts from untouched weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

START_LR, END_LR = 1e-7, 10.0  # fastai's defaults
BETA = 0.98  # smoothing of the loss (exponential moving average, debiased), as fastai
DIVERGE = 4.0  # stop when the smoothed loss exceeds this multiple of the best one seen


def lr_at(step: int, num_iter: int, start: float = START_LR, end: float = END_LR) -> float:
    """The LR of sweep step `step` of num_iter: exponential from start to end."""
    return start * (end / start) ** (step / max(num_iter - 1, 1))


def _step(accelerator, model, optimizer, batch, preprocess, criterion, lr: float) -> torch.Tensor:
    """One optimizer step at `lr` (times each group's lr_scale); the loss averaged over processes."""
    x, y, _ = batch
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    with accelerator.autocast():
        loss = criterion(model(preprocess(x)), y)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return accelerator.reduce(loss.detach(), reduction="mean")


def time_steps(accelerator, model: torch.nn.Module, optimizer, loader, preprocess, criterion, steps: int) -> float:
    """Seconds per sweep step on this machine, batch loading included: `steps` steps at START_LR (which leaves the
    copy as it is), the median after the first (its warm-up), averaged over the processes so that every rank
    plans the same sweep."""
    import time

    model.train()
    times, batches = [], iter(loader)
    for _ in range(steps):
        started = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        float(_step(accelerator, model, optimizer, batch, preprocess, criterion, START_LR))  # .item() syncs a GPU
        times.append(time.perf_counter() - started)
    timed = sorted(times[1:] or times)
    median = torch.tensor([timed[len(timed) // 2]], device=accelerator.device)
    return float(accelerator.reduce(median, reduction="mean") if accelerator.num_processes > 1 else median)


def sweep(accelerator, model: torch.nn.Module, optimizer, loader, preprocess, criterion,
          num_iter: int) -> tuple[list[float], list[float]]:
    """(lrs, smoothed losses) of the range test; the loss is averaged over processes, so every rank stops together."""
    from tqdm.auto import tqdm

    model.train()
    lrs, losses, avg, best = [], [], 0.0, math.inf
    batches = iter(loader)
    for step in tqdm(range(num_iter), desc="lr_find", disable=not accelerator.is_main_process, leave=False):
        batch = next(batches, None)
        if batch is None:  # a small dataset: the sweep goes on over the data again
            batches = iter(loader)
            batch = next(batches)
        lr = lr_at(step, num_iter)
        value = float(_step(accelerator, model, optimizer, batch, preprocess, criterion, lr))
        if not math.isfinite(value):
            break
        avg = BETA * avg + (1 - BETA) * value
        smoothed = avg / (1 - BETA ** (step + 1))
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if step > 0 and smoothed > DIVERGE * best:
            break
    return lrs, losses


def valley(lrs: list[float], losses: list[float]) -> float:
    """fastai's 'valley' rule: the LR two thirds down the longest run of decreasing loss (robust to noise)."""
    n = len(losses)
    run = [1] * n
    end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end] < run[i]:
            end = i
    start = end - run[end] + 1
    third = (end - start) / 3
    return lrs[min(n - 1, start + int(third) + int(third / 2))]


def suggest(lrs: list[float], losses: list[float]) -> dict:
    """The suggested LR — the minimum's LR / 10 (fastai's `lr_min`) — and two alternatives for the record: the
    steepest descent and fastai's 'valley'.

    Why lr_min: on the smoke recipe (and in fastai's own course rule, "an order of magnitude below the minimum")
    it trained best; 'valley' follows the longest decreasing run, which on a nearly flat start begins far too low
    (8e-5 where the descent starts at 1e-4 in tests/test_lr_find.py) and lost to 100x its own value.
    """
    if len(losses) < 5:
        raise ValueError(f"the range test stopped after {len(losses)} steps: too few to suggest an LR")
    lo = int(np.argmin(losses))
    grads = np.gradient(np.asarray(losses), np.log10(lrs))
    steepest = int(np.argmin(grads[: max(lo, 1)]))
    return {"suggestion": lrs[lo] / 10, "method": "min_loss_lr_div_10", "min_loss_lr": lrs[lo],
            "steepest": lrs[steepest], "valley": valley(lrs, losses)}


def save(out: Path, lrs: list[float], losses: list[float], found: dict) -> Path:
    """lr_find/lr_find.json and lr_find/lr_find.png (loss against LR on a log axis, the suggestion marked)."""
    from trainer.checkpoint.write import write_json
    from trainer.evaluation.plots import lr_find_figure, save_png

    folder = out / "lr_find"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "lr_find.json", {**found, "lrs": lrs, "losses": losses, "start_lr": START_LR,
                                         "end_lr": END_LR, "smoothing": BETA, "diverge_factor": DIVERGE})
    save_png(lr_find_figure(lrs, losses, found["suggestion"]), folder / "lr_find.png")
    return folder
