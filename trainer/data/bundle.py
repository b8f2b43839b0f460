"""The splits the trainer uses: load --dataset, verify, encode labels, hold out, cap, add --extra-data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import MULTI_LABEL, SINGLE_LABEL, DataConfig
from trainer.data.extra import add_extra_data
from trainer.data.images import verify_images
from trainer.data.multilabel import encode_multilabels, is_multi_label, multilabel_cap, multilabel_holdout
from trainer.data.sources import dataset_version, detect_columns, load_source
from trainer.data.splits import (
    check_group_column,
    check_labels,
    encode_labels,
    split_names,
    stratified_cap,
    stratified_holdout,
)
from trainer.data.waves import verify_audio
from trainer.errors import UserError


@dataclass
class DataBundle:
    """The splits the trainer uses, with the detected columns and the label names."""

    train: "datasets.Dataset"  # noqa: F821 - datasets is imported lazily
    val: "datasets.Dataset"  # noqa: F821
    test: "datasets.Dataset" | None  # noqa: F821
    input_column: str  # an Image column, or an Audio column when modality == "audio"
    label_column: str
    label_names: list[str]
    source: dict = field(default_factory=dict)  # id, config, revision, fingerprints: for the manifest
    skipped: int = 0  # unreadable files dropped from a local folder
    modality: str = "image"  # "audio" when the input column is a datasets.Audio feature
    preflight: dict | None = None  # the quick data preflight (trainer/data/audit.py), written to eval/
    task: str = SINGLE_LABEL  # "multi_label": the label column is List(ClassLabel), targets are multi-hot


def build_data(cfg: DataConfig, seed: int) -> DataBundle:
    """Load --dataset and return the train/val/test splits the trainer uses."""
    import datasets

    raw = load_source(cfg)
    train_name, val_name, test_name = split_names(raw, cfg)
    splits = {"train": raw[train_name]}
    if val_name:
        splits["val"] = raw[val_name]
    if test_name:
        splits["test"] = raw[test_name]
    for name, ds in splits.items():
        if len(ds) == 0:
            raise UserError(f"split {name!r} of {cfg.dataset} is empty (0 rows); point --{name}-split at a "
                            "split with data.")
    image, label = detect_columns(splits["train"].features, cfg)
    modality = "audio" if isinstance(splits["train"].features[image], datasets.Audio) else "image"
    skipped = 0
    if Path(cfg.dataset).expanduser().is_dir():
        verify = verify_audio if modality == "audio" else verify_images
        for name in list(splits):
            splits[name], dropped = verify(splits[name], image)
            skipped += dropped
        if skipped:
            print(f"warning: skipped {skipped} unreadable {modality} file(s) in {cfg.dataset}", flush=True)
    multi = is_multi_label(splits["train"].features, label, cfg)
    label_names = (_multi_label_splits if multi else _single_label_splits)(splits, label, cfg, seed)
    if cfg.group_column:
        check_group_column(splits, cfg.group_column)
    if multi and cfg.extra_data:
        raise UserError("--extra-data adds <class>/<file> folders: one class per file, so it cannot extend "
                        "multi-label data. Add those files to the dataset with their label lists instead.")
    # the app's flywheel corrections: train split only, after the holdout and the caps (trainer/data/extra.py)
    extra = add_extra_data(splits, cfg.extra_data, image, label, label_names, modality,
                           cfg.extra_data_pending) if cfg.extra_data else None
    source = {"dataset": cfg.dataset, "config": cfg.dataset_config, "revision": cfg.dataset_revision,
              "version": dataset_version(cfg, raw),
              "splits": {"train": train_name, "val": val_name or f"{train_name} (held out {cfg.val_pct:.0%})",
                         "test": test_name},
              "sizes": {k: len(v) for k, v in splits.items()},
              "fingerprints": {k: v._fingerprint for k, v in splits.items()}}
    if extra is not None:
        source["extra_data"] = extra
    return DataBundle(splits["train"], splits["val"], splits.get("test"), image, label, label_names,
                      source, skipped, modality, task=MULTI_LABEL if multi else SINGLE_LABEL)


def _single_label_splits(splits: dict, label: str, cfg: DataConfig, seed: int) -> list[str]:
    """One ClassLabel over every split, a stratified holdout when there is no val split, stratified caps."""
    check_labels(splits, label, cfg.drop_unlabeled)  # before encoding: None and -1 are counted, not mislabelled
    label_names = encode_labels(splits, label)
    if "val" not in splits:
        splits["train"], splits["val"] = stratified_holdout(splits["train"], label, cfg.val_pct, seed, label_names)
    splits["train"] = stratified_cap(splits["train"], cfg.max_train_samples, label, seed)
    for name in ("val", "test"):
        if name in splits:
            splits[name] = stratified_cap(splits[name], cfg.max_eval_samples, label, seed)
    return label_names


def _multi_label_splits(splits: dict, label: str, cfg: DataConfig, seed: int) -> list[str]:
    """One List(ClassLabel) over every split; holdout and caps by iterative stratification (trainer/data/multilabel)."""
    label_names = encode_multilabels(splits, label, cfg)
    n = len(label_names)
    if "val" not in splits:
        splits["train"], splits["val"] = multilabel_holdout(splits["train"], label, cfg.val_pct, seed, n)
    splits["train"] = multilabel_cap(splits["train"], cfg.max_train_samples, label, seed, n)
    for name in ("val", "test"):
        if name in splits:
            splits[name] = multilabel_cap(splits[name], cfg.max_eval_samples, label, seed, n)
    return label_names
