"""DataLoaders for train/val/test: decode-once cache or timm PIL transforms, balanced sampling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from trainer.config import MULTI_LABEL, TrainConfig, default_workers
from trainer.data.bundle import DataBundle
from trainer.data.images import (
    DevicePreprocess,
    HFImageDataset,
    TensorImageDataset,
    batch_collate,
    cache_transform,
    decode_all,
    eval_transform,
    pixel_bytes,
    preresize,
    train_transform,
    use_decode_cache,
)
from trainer.data.multilabel import label_matrix
from trainer.data.splits import label_array
from trainer.data.waves import (
    AudioPreprocess,
    CachedWaves,
    PadCollate,
    WaveDataset,
    audio_data_cfg,
    wave_bytes,
    with_stats,
)
from trainer.errors import UserError


class EpochWeightedSampler(torch.utils.data.WeightedRandomSampler):
    """WeightedRandomSampler re-seeded from (seed, epoch), so runs and resumes draw the same samples."""

    def __init__(self, weights: np.ndarray, seed: int) -> None:
        super().__init__(torch.as_tensor(weights, dtype=torch.double), len(weights), replacement=True)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Accelerate's loader each epoch."""
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


@dataclass
class Loaders:
    """Everything the loop needs to read data."""

    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    test: torch.utils.data.DataLoader | None
    train_preprocess: Callable  # DevicePreprocess (images) or trainer.data.waves.AudioPreprocess
    eval_preprocess: Callable
    class_counts: np.ndarray
    decoded: bool
    audio: dict | None = None  # the config.json `audio` block (front end + train statistics) for audio data
    sharded: bool = False  # train already yields this process's share (--streaming), so len() is per process
    multi_label: bool = False  # labels are (B, C) multi-hot float targets; class_counts are positives per class


def class_counts(ds, label: str, num_classes: int, multi_label: bool = False) -> np.ndarray:
    """Samples per class in a split (multi-label: rows holding each class)."""
    if multi_label:
        return label_matrix(ds, label, num_classes).sum(0, dtype=np.int64)
    return np.bincount(label_array(ds, label), minlength=num_classes)


def split_targets(bundle: DataBundle, ds) -> np.ndarray | None:
    """The (N, C) multi-hot targets of a split of multi-label data; None for single-label data (class ids)."""
    if ds is None or bundle.task != MULTI_LABEL:
        return None
    return label_matrix(ds, bundle.label_column, len(bundle.label_names))


def _datasets(cfg: TrainConfig, bundle: DataBundle, data_cfg: dict, decoded: bool) -> tuple:
    """(train, val, test) torch datasets, decoded once into memory when `decoded`."""
    img, lab, workers = bundle.input_column, bundle.label_column, cfg.data.num_workers
    ev = eval_transform(data_cfg, uint8=True)
    splits = {"val": bundle.val, "test": bundle.test}
    if not decoded:
        train = bundle.train
        if cfg.data.preresize:
            train = preresize(train, img, cfg.data.preresize, workers, "pre-resize train")
            splits = {k: preresize(v, img, cfg.data.preresize, workers, f"pre-resize {k}")
                      for k, v in splits.items() if v is not None}
        train = HFImageDataset(train, img, lab, train_transform(data_cfg, cfg.augment), split_targets(bundle, train))
        rest = {k: HFImageDataset(v, img, lab, ev, split_targets(bundle, v)) for k, v in splits.items()
                if v is not None}
        return train, rest["val"], rest.get("test")
    if "num_workers" not in cfg.explicit:  # the main process only waits while the cache is decoded: every core helps
        workers = default_workers(main_busy=False)
    train = HFImageDataset(bundle.train, img, lab, cache_transform(data_cfg), split_targets(bundle, bundle.train))
    train = TensorImageDataset.stack(decode_all(train, workers, "decode train"))
    rest = {k: TensorImageDataset.stack(decode_all(HFImageDataset(v, img, lab, ev, split_targets(bundle, v)), workers,
                                                   f"decode {k}"))
            for k, v in splits.items() if v is not None}
    return train, rest["val"], rest.get("test")


def make_loaders(cfg: TrainConfig, bundle: DataBundle, sets: tuple, counts: np.ndarray, workers: int,
                 num_processes: int, collate: tuple = (None, None)) -> tuple:
    """(train, val, test) DataLoaders over (train, val, test) torch datasets: balanced sampler, drop_last."""
    common = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                  prefetch_factor=4 if workers > 0 else None)  # 4 batches per worker ride out slow decodes
    train_ds, val_ds, test_ds = sets
    sampler = None
    if cfg.balance == "sampler":
        if bundle.task == MULTI_LABEL:  # a row holds several classes: no per-row class weight balances them all
            raise UserError("--balance sampler weights each row by its one class; multi-label rows hold several. "
                            "Use --balance loss (BCE pos_weight = negatives / positives per class).")
        labels = label_array(bundle.train, bundle.label_column)
        sampler = EpochWeightedSampler(1.0 / np.maximum(counts, 1)[labels], cfg.seed)
    # drop_last keeps batch statistics sane (and mixup needs even batches) unless the set is tiny
    drop_last = len(train_ds) >= 2 * cfg.batch_size * num_processes
    train = torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=sampler is None,
                                        sampler=sampler, drop_last=drop_last, collate_fn=collate[0], **common)
    eval_bs = cfg.eval_batch_size or 2 * cfg.batch_size
    val = torch.utils.data.DataLoader(val_ds, batch_size=eval_bs, collate_fn=collate[1], **common)
    test = torch.utils.data.DataLoader(test_ds, batch_size=eval_bs, collate_fn=collate[1], **common) \
        if test_ds is not None else None
    return train, val, test


def build_loaders(cfg: TrainConfig, bundle: DataBundle, data_cfg: dict, num_processes: int) -> Loaders:
    """Train/val/test loaders plus the on-device preprocessing that matches them."""
    n_classes, multi = len(bundle.label_names), bundle.task == MULTI_LABEL
    counts = class_counts(bundle.train, bundle.label_column, n_classes, multi)
    n = len(bundle.train) + len(bundle.val) + (len(bundle.test) if bundle.test is not None else 0)
    decoded = use_decode_cache(cfg.data.decode_cache, pixel_bytes(n, tuple(data_cfg["input_size"])), cfg.augment)
    sets = _datasets(cfg, bundle, data_cfg, decoded)
    workers = 0 if decoded else cfg.data.num_workers  # in-memory tensors: worker IPC costs more than it saves
    collate = (batch_collate, batch_collate) if decoded else (None, None)
    train, val, test = make_loaders(cfg, bundle, sets, counts, workers, num_processes, collate)
    channels_last = cfg.model.channels_last
    return Loaders(train, val, test,
                   DevicePreprocess(data_cfg, cfg.augment, channels_last, batch_crop=decoded),
                   DevicePreprocess(data_cfg, None, channels_last, batch_crop=False),
                   counts, decoded, multi_label=multi)


def build_audio_loaders(cfg: TrainConfig, bundle: DataBundle, num_processes: int, log=print) -> tuple:
    """(Loaders, timm data config) for an audio bundle: waves decoded once when they fit, stats on train."""
    a, column, label = cfg.audio, bundle.input_column, bundle.label_column
    splits = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
    sets = {k: WaveDataset(v, column, label, a.sample_rate, split_targets(bundle, v)) for k, v in splits.items()
            if v is not None}
    decoded = use_decode_cache(cfg.data.decode_cache, wave_bytes(sets["train"], sum(map(len, sets.values()))))
    if decoded:  # lists of (wave, label, row) per batch, packed into one flat tensor per split
        workers = cfg.data.num_workers if "num_workers" in cfg.explicit else default_workers(main_busy=False)
        sets = {k: CachedWaves.pack(decode_all(d, workers, f"decode {k}", batch_size=64,
                                               collate_fn=list)) for k, d in sets.items()}
    a = with_stats(a, sets["train"], log)
    multi = bundle.task == MULTI_LABEL
    counts = class_counts(bundle.train, label, len(bundle.label_names), multi)
    workers = 0 if decoded else cfg.data.num_workers  # in-memory waves: worker IPC costs more than it saves
    collate = (PadCollate(a.clip_samples, train=True), PadCollate(a.clip_samples, train=False))
    train, val, test = make_loaders(cfg, bundle, (sets["train"], sets["val"], sets.get("test")), counts, workers,
                                    num_processes, collate)
    channels_last = cfg.model.channels_last
    loaders = Loaders(train, val, test, AudioPreprocess(a, True, channels_last),
                      AudioPreprocess(a, False, channels_last), counts, decoded, audio=a.to_block(),
                      multi_label=multi)
    return loaders, audio_data_cfg(a)
