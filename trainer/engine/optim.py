"""Optimizer, LR schedule and loss from timm: parameter groups, fine-tune phases, mixup."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainer.config import TrainConfig
from trainer.data.loaders import Loaders


def param_groups(model: torch.nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """timm's weight-decay groups (no decay for norms, biases and the model's no_weight_decay(): ViT's pos_embed
    and cls_token, Swin's relative_position_bias_table), with --layer-decay timm's layer-wise LR decay groups;
    each split into head and backbone for set_phase, `layer_scale` keeping the group's own depth scale."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    skip = getattr(model, "no_weight_decay", set)()  # as create_optimizer_v2 reads it
    if layer_decay is None:
        groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=skip)
    else:
        groups = param_groups_layer_decay(model, weight_decay, no_weight_decay_list=skip, layer_decay=layer_decay)
    head = {id(p) for p in model.get_classifier().parameters()}
    split = []
    for g in groups:  # a layer group may hold head and backbone tensors alike (ConvNeXt's head.norm beside head.fc)
        scale = g.get("lr_scale", 1.0)
        for part in ("backbone", "head"):
            params = [p for p in g["params"] if (id(p) in head) == (part == "head")]
            if params:
                split.append({**g, "params": params, "part": part, "layer_scale": scale, "lr_scale": scale})
    return split


def set_phase(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    """fastai-style fine_tune: backbone LR 0 during --freeze-epochs, then lr x --backbone-lr-scale; the phase's
    factor multiplies each group's own --layer-decay scale (timm's schedulers set lr = value x lr_scale)."""
    frozen = epoch < cfg.optim.freeze_epochs
    for g in optimizer.param_groups:
        factor = 1.0 if g["part"] == "head" else 0.0 if frozen else cfg.optim.backbone_lr_scale
        g["lr_scale"] = g.get("layer_scale", 1.0) * factor  # states saved before layer_scale existed: 1


def build_optim(model: torch.nn.Module, cfg: TrainConfig, steps_per_epoch: int) -> tuple:
    """timm optimizer + per-step timm scheduler; returns (optimizer, scheduler, total epochs)."""
    from timm.optim import create_optimizer_v2

    o = cfg.optim
    # torch's fused (single-kernel) Adam/AdamW on CUDA; timm passes the keyword through to torch.optim
    fused = {"fused": True} if torch.cuda.is_available() and o.opt.lower() in ("adam", "adamw") else {}
    optimizer = create_optimizer_v2(param_groups(model, o.weight_decay, o.layer_decay), opt=o.opt, lr=o.lr,
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
