"""--streaming: the train split as a sharded, shuffled `datasets.IterableDataset`; val/test materialized in memory.

For data larger than disk: nothing is downloaded ahead, every process reads its own shards
(`split_dataset_by_node`; whole shards when their count divides by the process count), DataLoader workers split
those shards again (datasets does that itself), and a shuffle buffer re-seeded per epoch (`set_epoch`) mixes the
stream. Validation and test are read once, up to
--max-eval-samples rows, into ordinary in-memory Datasets, so their metrics are exact and identical on any
number of processes.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from trainer.config import TrainConfig
from trainer.data.builtin import EMBEDDED, load_embedded
from trainer.data.bundle import DataBundle
from trainer.data.images import (
    DevicePreprocess,
    HFImageDataset,
    TensorImageDataset,
    batch_collate,
    decode_all,
    eval_transform,
    pixel_bytes,
    to_rgb,
    train_transform,
    use_decode_cache,
)
from trainer.data.loaders import Loaders
from trainer.data.multilabel import is_list_feature
from trainer.data.sources import dataset_version, detect_columns, folder_builder
from trainer.data.splits import check_labels, label_array, split_names
from trainer.errors import UserError

EVAL_CAP = 10_000  # rows of val/test read from a stream when --max-eval-samples is not given


def check_streaming(cfg: TrainConfig) -> None:
    """Refuse the options a stream cannot honour, saying what to do instead."""
    clashes = {"--folds": cfg.folds, "--extra-data": cfg.data.extra_data, "--balance": cfg.balance != "none"}
    used = [flag for flag, on in clashes.items() if on]
    if used:
        raise UserError(f"--streaming cannot be combined with {', '.join(used)}: they need the whole train split "
                        "at once. Drop them or train without --streaming.")


def stream_source(data_cfg) -> tuple[dict, dict]:
    """({split: IterableDataset}, {split: rows if known}) for --dataset: embedded, local folder or Hub id."""
    import datasets


    path = Path(data_cfg.dataset).expanduser()
    if data_cfg.dataset in EMBEDDED or (path / "dataset_dict.json").exists():
        # already Arrow on disk (embedded, or save_to_disk): streamed in shards like a Hub dataset
        dd = load_embedded(data_cfg.dataset) if data_cfg.dataset in EMBEDDED else datasets.load_from_disk(str(path))
        # a multiple of the process count, so that split_dataset_by_node can hand every rank whole shards
        shards = 8 * int(os.environ.get("WORLD_SIZE", "1"))
        streams = {k: v.to_iterable_dataset(num_shards=max(1, min(shards, len(v)))) for k, v in dd.items()}
        return streams, {k: len(v) for k, v in dd.items()}
    try:
        if path.is_dir():
            raw = datasets.load_dataset(folder_builder(path), data_dir=str(path), streaming=True)
        else:
            raw = datasets.load_dataset(data_cfg.dataset, data_cfg.dataset_config,
                                        revision=data_cfg.dataset_revision, streaming=True)
        return dict(raw), {k: _known_size(v, k) for k, v in raw.items()}
    except Exception as e:  # datasets raises many types (network, not found, config); all are user-facing
        raise UserError(f"cannot stream {data_cfg.dataset!r} ({type(e).__name__}: {str(e)[:300]}). Check the "
                        "id/--dataset-config and your network, or train without --streaming.") from None


def undecoded(stream, image: str):
    """The stream with its Image column left encoded ({bytes, path}), so rows can be copied, hashed or decoded
    one by one under our own error handling."""
    return stream.cast_column(image, dataclasses.replace(stream.features[image], decode=False))


def materialize(stream, n: int, image: str):
    """The first n rows of a stream as an in-memory Dataset (images kept encoded until used)."""
    import datasets

    feature = stream.features[image]
    raw = undecoded(stream, image)
    rows = list(raw.take(n))
    if not rows:
        raise UserError("a streamed validation/test split is empty; point --val-split/--test-split at data.")
    ds = datasets.Dataset.from_list(rows, features=raw.features)
    return ds.cast_column(image, feature)


def _holdout(stream, image: str, k: int):
    """(train, val) streams: an example is validation when the CRC32 of its encoded image (or path) is 0 mod k.

    By content, not position: shard shuffling reorders the stream every epoch, and a position-based split
    would then leak validation rows into training.
    """
    import zlib

    feature = stream.features[image]
    raw = undecoded(stream, image)

    def is_val(value: dict) -> bool:
        data = value.get("bytes") or str(value.get("path")).encode()
        return zlib.crc32(data) % k == 0

    val = raw.filter(is_val, input_columns=[image]).cast_column(image, feature)
    train = raw.filter(lambda v: not is_val(v), input_columns=[image]).cast_column(image, feature)
    return train, val


def _known_size(stream, split: str) -> int | None:
    """Rows in a streamed split when its metadata says (Hub datasets usually do), else None."""
    splits = getattr(stream.info, "splits", None) or {}
    info = splits.get(split) if hasattr(splits, "get") else None
    return getattr(info, "num_examples", None) or None


def build_stream_data(cfg: TrainConfig) -> DataBundle:
    """A DataBundle whose train is an IterableDataset (source["sizes"]["train"]: rows, if known) and val/test in
    memory."""
    import datasets

    check_streaming(cfg)
    d = cfg.data
    raw, sizes = stream_source(d)
    _, val_name, test_name = split_names(raw, d)
    train = raw[d.train_split]
    if train.features is None:
        raise UserError("the stream does not declare its features; train without --streaming.")
    image, label = detect_columns(train.features, d)
    if isinstance(train.features[image], datasets.Audio):
        raise UserError("--streaming covers image datasets; audio is decoded once into memory: drop --streaming.")
    if d.multi_label or is_list_feature(train.features[label]):
        raise UserError("--streaming trains single-label data for now; multi-label data (a list label column or "
                        "--multi-label) trains without --streaming.")
    if not isinstance(train.features[label], datasets.ClassLabel):
        raise UserError(f"--streaming needs a ClassLabel label column to know the classes up front; {label!r} is "
                        f"{train.features[label]}. Train without --streaming, or cast the column in the dataset.")
    n_train = sizes.get(d.train_split)
    cap = d.max_eval_samples or EVAL_CAP
    k = max(2, round(1 / d.val_pct))
    if val_name is None:
        train, val_stream = _holdout(train, image, k)
        n_train = int(n_train * (1 - 1 / k)) if n_train else None  # expected size: the hash splits ~1/k off
    else:
        val_stream = raw[val_name]
    val = materialize(val_stream, cap, image)
    test = materialize(raw[test_name], cap, image) if test_name else None
    held = {"val": val, **({"test": test} if test is not None else {})}
    check_labels(held, label, d.drop_unlabeled)  # in memory: counted and refused (or dropped) like any split
    val, test = held["val"], held.get("test")
    if d.max_train_samples:
        train, n_train = train.take(d.max_train_samples), min(n_train or d.max_train_samples, d.max_train_samples)
    source = {"dataset": d.dataset, "config": d.dataset_config, "revision": d.dataset_revision,
              "version": dataset_version(d, raw), "streaming": True,
              "splits": {"train": d.train_split, "test": test_name,
                         "val": val_name or f"{d.train_split} (1 in {k} held out by content hash)"},
              "sizes": {**({"train": n_train} if n_train else {}), "val": len(val),
                        **({"test": len(test)} if test is not None else {})}}
    return DataBundle(train, val, test, image, label, list(train.features[label].names), source)


class StreamingImages(torch.utils.data.IterableDataset):
    """This process's shards of the train stream, shuffled per epoch, as (uint8 CHW, label, -1) samples.

    Images are decoded here (datasets' own Image.decode_example) so that one unreadable file is skipped with a
    warning instead of ending a long run; DataLoader workers split the shards among themselves (datasets does it).
    """

    def __init__(self, stream, image: str, label: str, transform, rank: int, world: int, seed: int,
                 buffer: int) -> None:
        from datasets.distributed import split_dataset_by_node

        self.feature = stream.features[image]
        if stream.num_shards % world and rank == 0:
            print(f"warning: the stream has {stream.num_shards} shards for {world} processes, so every process "
                  f"reads all of it and keeps 1 row in {world}; a shard count divisible by {world} avoids that",
                  flush=True)
        raw = undecoded(stream, image)
        self.stream = split_dataset_by_node(raw, rank=rank, world_size=world).shuffle(seed=seed, buffer_size=buffer)
        self.image, self.label, self.transform = image, label, transform

    def set_epoch(self, epoch: int) -> None:
        """Re-seed shard order and shuffle buffer (datasets: effective seed = seed + epoch)."""
        self.stream.set_epoch(epoch)

    def __iter__(self):
        warned, unlabeled = False, 0
        num_classes = self.stream.features[self.label].num_classes
        for row in self.stream:
            y = row[self.label]
            if y is None or not 0 <= y < num_classes:  # a stream cannot be counted up front: skip, and say so once
                unlabeled += 1
                if unlabeled == 1:
                    print(f"warning: skipping stream rows without a usable label ({y!r}; -1 means 'no label')",
                          flush=True)
                continue
            try:
                image = self.feature.decode_example(row[self.image])
            except Exception as e:  # PIL raises many types for broken files
                if not warned:
                    print(f"warning: skipping unreadable image(s) in the stream ({type(e).__name__}: {e})", flush=True)
                    warned = True
                continue
            yield torch.as_tensor(self.transform(to_rgb(image))), row[self.label], -1


def rebatch(batches, size: int):
    """Full `size` batches out of batches that may be partial: every DataLoader worker batches only its own rows,
    so each worker's last batch of a pass is short (torch's drop_last would drop it, and with few rows per worker,
    everything). Leftover rows carry over to the next batch."""
    parts, have = [], 0
    for batch in batches:
        parts.append(batch)
        have += len(batch[1])
        while have >= size:  # one part: slice it (a view, still pinned); several: join them
            x, y, index = parts[0] if len(parts) == 1 else (torch.cat(c) for c in zip(*parts, strict=True))
            yield x[:size], y[:size], index[:size]
            parts, have = ([(x[size:], y[size:], index[size:])] if have > size else []), have - size


class StreamLoader:
    """Exactly `steps` full batches per epoch on every process, moved to the device: equal step counts keep the
    ranks' gradient all-reduces in lock-step even when their shards differ in size (a rank that runs dry re-reads
    its shards, reshuffled)."""

    def __init__(self, loader: torch.utils.data.DataLoader, dataset: StreamingImages, steps: int, device,
                 skip: int = 0) -> None:
        self.loader, self.dataset, self.steps, self.device, self.epoch = loader, dataset, steps, device, 0
        self.skip = skip

    def __len__(self) -> int:
        return self.steps - self.skip

    def skip_first_batches(self, n: int) -> StreamLoader:
        """This loader resumed n batches into an epoch: those are read off the stream and dropped (a stream cannot
        seek), the rest yielded. Accelerate's `skip_first_batches` rebuilds a map-style DataLoader (it reads
        `drop_last`, a sampler), which this loader is not."""
        return StreamLoader(self.loader, self.dataset, self.steps, self.device, skip=n)

    def set_epoch(self, epoch: int) -> None:
        """Called by the loop each epoch."""
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def _passes(self):
        """The loader's batches, pass after pass (each re-read reshuffled); a first pass too small is an error."""
        rereads = 0
        while True:
            rows = 0
            for batch in self.loader:
                rows += len(batch[1])
                yield batch
            if rereads == 0 and rows < self.loader.batch_size:
                raise UserError(f"this process's share of the training stream has {rows} rows, fewer than "
                                f"--batch-size {self.loader.batch_size}. Lower --batch-size, use fewer processes, "
                                "or check --train-split/--max-train-samples.")
            rereads += 1
            self.dataset.set_epoch(self.epoch + 10_000 * rereads)

    def __iter__(self):
        for done, (x, y, index) in enumerate(rebatch(self._passes(), self.loader.batch_size), start=1):
            if done > self.skip:  # skipped batches never reach the device
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True), index
            if done == self.steps:
                return


def stream_steps(cfg: TrainConfig, n_train: int | None, num_processes: int) -> int:
    """Batches per epoch and process: from the known row count, else --max-steps / --epochs optimizer steps."""
    if n_train:
        return max(1, n_train // (cfg.batch_size * num_processes))
    if cfg.max_steps is None:
        raise UserError("this stream does not say how many rows it has, so an epoch has no length: pass --max-steps "
                        "N (split into --epochs parts, each ending with validation).")
    return max(1, -(-cfg.max_steps // cfg.epochs)) * cfg.grad_accum  # batches; --max-steps counts optimizer steps


def _eval_loader(cfg: TrainConfig, ds, image: str, label: str, data_cfg: dict):
    """An in-memory val/test split: decoded once when it fits the decode cache (eval transforms are fixed)."""
    workers = cfg.data.num_workers
    dataset = HFImageDataset(ds, image, label, eval_transform(data_cfg, uint8=True))
    decoded = use_decode_cache(cfg.data.decode_cache, pixel_bytes(len(ds), tuple(data_cfg["input_size"])))
    if decoded:
        dataset = TensorImageDataset.stack(decode_all(dataset, workers, "decode eval"))
    return torch.utils.data.DataLoader(dataset, batch_size=cfg.eval_batch_size or 2 * cfg.batch_size,
                                       num_workers=0 if decoded else workers,
                                       collate_fn=batch_collate if decoded else None)


def build_stream_loaders(cfg: TrainConfig, bundle: DataBundle, data_cfg: dict, accelerator):
    """Loaders for a streamed train split (sharded per process here, not by Accelerate) and in-memory val/test."""
    import numpy as np


    d, cuda = cfg.data, torch.cuda.is_available()
    dataset = StreamingImages(bundle.train, bundle.input_column, bundle.label_column,
                              train_transform(data_cfg, cfg.augment), accelerator.process_index,
                              accelerator.num_processes, cfg.seed, d.shuffle_buffer)
    # not drop_last: each worker batches its own rows, and StreamLoader joins the short batches (rebatch).
    # Persistent workers see set_epoch: datasets keeps the epoch in shared memory for them.
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, num_workers=d.num_workers,
                                         persistent_workers=d.num_workers > 0, pin_memory=cuda,
                                         prefetch_factor=4 if d.num_workers else None)
    steps = stream_steps(cfg, bundle.source["sizes"].get("train"), accelerator.num_processes)
    train = StreamLoader(loader, dataset, steps, accelerator.device)
    val = _eval_loader(cfg, bundle.val, bundle.input_column, bundle.label_column, data_cfg)
    test = _eval_loader(cfg, bundle.test, bundle.input_column, bundle.label_column, data_cfg) \
        if bundle.test is not None else None
    counts = np.bincount(label_array(bundle.val, bundle.label_column), minlength=len(bundle.label_names))
    cl = cfg.model.channels_last
    return Loaders(train, val, test, DevicePreprocess(data_cfg, cfg.augment, cl, batch_crop=False),
                   DevicePreprocess(data_cfg, None, cl, batch_crop=False), counts, decoded=False, sharded=True)
