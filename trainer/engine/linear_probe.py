"""--linear-probe: before fine-tuning, fit the head on frozen backbone features (trainer/evaluation/features.py),
within a bounded share of the time budget; the probed model is the run's first candidate for the best checkpoint
(history row "epoch 0"), so fine-tuning is kept only where it beats it on validation.

Rank 0 computes the features and fits the head on the run's own loaders (train rows through the validation
collate and preprocessing, without augmentation); every rank then takes the same head. BatchNorm statistics stay
the pretrained ones: re-estimating them on the new data first (AdaBN) lowered the Fashion-MNIST probe from 0.837 to
0.703 validation accuracy, and the run after it (docs/benchmarks.md).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from trainer.engine.budget import Budget
from trainer.evaluation.features import extract, fit_head, stratified_rows, supports_probe

LP_PER_CLASS = 300  # train samples per class whose features fit the head: a linear head on ~1k features needs no more
LP_SHARE = 0.2  # of the time left: what the feature passes (validation + the train subset) may take
LP_MIN_PER_CLASS = 5  # fewer rows per class than this fit no useful head: the probe is skipped


def linear_probe(cfg, accelerator, model: torch.nn.Module, loaders, budget: Budget) -> dict | None:
    """Fit `model`'s head on frozen features (every rank ends with the same head); {"metrics": validation numbers,
    "rows", "weight_decay", "seconds"}, or None when it was skipped (said why)."""
    from accelerate.utils import broadcast_object_list

    with budget.phase("linear_probe"):
        model.to(accelerator.device)  # as Accelerate's prepare will
        found = [None]
        if accelerator.is_main_process:
            found = [_probe(cfg, model, loaders, budget, accelerator.device, accelerator.print)]
        found, per_sample = broadcast_object_list(found)[0]
        if per_sample is not None:  # the pacer's first evaluation estimate: real passes at the eval batch size
            budget.hints["eval_sample_s"] = per_sample
        if found is None:
            return None
        head = accelerator.unwrap_model(model).get_classifier()
        with torch.no_grad():
            head.weight.copy_(found.pop("weight"))
            head.bias.copy_(found.pop("bias"))
    found["seconds"] = round(budget.measured["linear_probe"], 1)
    accelerator.print(f"linear probe: head fitted on the frozen features of {found['rows']} train samples in "
                      f"{found['seconds']} s (L2 {found['weight_decay']:g}): val_{cfg.metric} "
                      f"{found['metrics'][cfg.metric]:.4f}", flush=True)
    return found


def _probe(cfg, model, loaders, budget: Budget, device, say) -> tuple:
    """Rank 0: (the head and its numbers, or None when skipped; seconds per evaluated sample). The validation
    features come first: their pass times the evaluation here, and the train rows that fit the share follow."""
    from trainer.evaluation.report import quick_metrics

    if not supports_probe(model):
        say(f"linear probe skipped: {type(model.get_classifier()).__name__} is not a single Linear head", flush=True)
        return None, None
    if loaders.sharded:
        say("linear probe skipped: a streamed train split (--streaming) has no rows to pick a subset from", flush=True)
        return None, None
    batch = cfg.eval_batch_size or 2 * cfg.batch_size
    val, train = loaders.val, loaders.train
    share, started = LP_SHARE * max(0.0, budget.left()), time.perf_counter()
    val_features = extract(model, val, loaders.eval_preprocess, device, "linear probe: val features")
    val_s = time.perf_counter() - started
    per_sample = val_s / max(1, len(val.dataset))
    labels = _train_labels(train.dataset)
    per_class = LP_PER_CLASS
    if budget.seconds is not None:  # the train rows whose features fit what is left of the share
        classes = labels.shape[1] if labels.ndim == 2 else len(np.unique(labels))
        per_class = min(per_class, int((share - val_s) / per_sample / max(1, classes)))
        if per_class < LP_MIN_PER_CLASS:
            budget.choose(f"no linear probe: what is left of its share ({LP_SHARE:.0%} of the time left) buys "
                          f"features of {max(0, per_class)} train samples per class at {per_sample * 1000:.1f} ms "
                          "each", say)
            return None, per_sample
    rows = stratified_rows(labels, per_class, cfg.seed)
    subset = torch.utils.data.DataLoader(torch.utils.data.Subset(train.dataset, rows.tolist()), batch_size=batch,
                                         collate_fn=val.collate_fn)
    features = extract(model, subset, loaders.eval_preprocess, device, "linear probe: train features")
    per_sample = (time.perf_counter() - started) / max(1, len(val.dataset) + len(rows))  # both passes, steady
    head = fit_head(features, val_features, model.get_classifier().out_features, labels.ndim == 2)
    metrics = quick_metrics({"logits": head["val_logits"], "labels": val_features["labels"]},
                            model.get_classifier().out_features)
    return {"weight": head["weight"], "bias": head["bias"], "weight_decay": head["weight_decay"],
            "rows": int(len(rows)), "metrics": metrics}, per_sample


def _train_labels(dataset) -> np.ndarray:
    """The class ids (multi-label: multi-hot rows) of a training dataset of ours, without decoding any input."""
    for attr in ("labels", "targets"):  # in-memory images / waves, and multi-label HF-backed sets
        value = getattr(dataset, attr, None)
        if value is not None:
            return np.asarray(value)
    if hasattr(dataset, "ds"):  # a datasets-backed set: its label column
        return np.asarray(dataset.ds[dataset.label_column])
    raise TypeError(f"cannot read the labels of {type(dataset).__name__}")
