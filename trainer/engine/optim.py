"""Optimizer, LR schedule and loss from timm: parameter groups, fine-tune phases, mixup."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainer.config import TrainConfig
from trainer.data.loaders import Loaders


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Head/backbone x decay/no-decay groups; timm's schedulers honour the `lr_scale` key we tune per phase."""
    head = {id(p) for p in model.get_classifier().parameters()}
    groups: dict = {}
    for name, p in model.named_parameters():
        part = "head" if id(p) in head else "backbone"
        decay = p.ndim > 1 and not name.endswith(".bias")  # as timm's param_groups_weight_decay
        key = (part, decay)
        groups.setdefault(key, {"params": [], "weight_decay": weight_decay if decay else 0.0,
                                "part": part, "lr_scale": 1.0})["params"].append(p)
    return list(groups.values())


def set_phase(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    """fastai-style fine_tune: backbone LR 0 during --freeze-epochs, then lr x --backbone-lr-scale."""
    frozen = epoch < cfg.optim.freeze_epochs
    for g in optimizer.param_groups:
        if g["part"] == "backbone":
            g["lr_scale"] = 0.0 if frozen else cfg.optim.backbone_lr_scale


def build_optim(model: torch.nn.Module, cfg: TrainConfig, steps_per_epoch: int) -> tuple:
    """timm optimizer + per-step timm scheduler; returns (optimizer, scheduler, total epochs)."""
    from timm.optim import create_optimizer_v2

    o = cfg.optim
    # torch's fused (single-kernel) Adam/AdamW on CUDA; timm passes the keyword through to torch.optim
    fused = {"fused": True} if torch.cuda.is_available() and o.opt.lower() in ("adam", "adamw") else {}
    optimizer = create_optimizer_v2(param_groups(model, o.weight_decay), opt=o.opt, lr=o.lr,
                                    weight_decay=o.weight_decay, **fused)
    epochs = cfg.epochs if cfg.max_steps is None else max(1, math.ceil(cfg.max_steps / steps_per_epoch))
    return optimizer, build_scheduler(optimizer, cfg, steps_per_epoch), epochs


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
                    warmup_epochs: float | None = None):
    """timm's per-step scheduler over --epochs, or exactly --max-steps steps when set (the schedule ends there)."""
    from timm.scheduler import create_scheduler_v2

    o = cfg.optim
    epochs = cfg.epochs if cfg.max_steps is None else cfg.max_steps / steps_per_epoch
    scheduler, _ = create_scheduler_v2(optimizer, sched=o.sched, num_epochs=epochs, min_lr=o.min_lr,
                                       warmup_epochs=o.warmup_epochs if warmup_epochs is None else warmup_epochs,
                                       warmup_lr=o.lr * 0.01, step_on_epochs=False,
                                       updates_per_epoch=steps_per_epoch)
    return scheduler


def build_loss(cfg: TrainConfig, loaders: Loaders, num_classes: int) -> tuple[Callable, Callable | None]:
    """(criterion, mixup): torch CE handles class weights, smoothing and mixup's soft targets alike; multi-label
    data trains one sigmoid per class with timm's BinaryCrossEntropy."""
    if loaders.multi_label:
        return multi_label_loss(cfg, loaders, num_classes)
    weight = None
    if cfg.balance == "loss":
        counts = torch.as_tensor(loaders.class_counts, dtype=torch.float)
        weight = counts.sum() / (num_classes * counts.clamp(min=1))
    mixup = None
    a = cfg.augment
    if a.mixup > 0 or a.cutmix > 0:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, label_smoothing=a.smoothing,
                      num_classes=num_classes)
    smoothing = 0.0 if mixup else a.smoothing  # Mixup already smooths its soft targets
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing), mixup


def multi_label_loss(cfg: TrainConfig, loaders: Loaders, num_classes: int) -> tuple[Callable, Callable | None]:
    """(timm BinaryCrossEntropy on multi-hot targets, timm Mixup/CutMix mixing them): smoothing moves each binary
    target towards 0.5 (done by Mixup when it is on); --balance loss weighs positives by negatives / positives."""
    from timm.data import Mixup
    from timm.loss import BinaryCrossEntropy

    a = cfg.augment
    pos_weight = None
    if cfg.balance == "loss":
        positives = torch.as_tensor(loaders.class_counts, dtype=torch.float)
        rows = float(len(loaders.train.dataset))
        pos_weight = (rows - positives) / positives.clamp(min=1)
    mixup = None
    if a.mixup > 0 or a.cutmix > 0:
        mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, label_smoothing=a.smoothing,
                      num_classes=num_classes, multi_label=True)
    criterion = BinaryCrossEntropy(smoothing=a.smoothing if mixup is None else 0.0, smooth_dense=True,
                                   pos_weight=pos_weight)
    return criterion, mixup
