"""Train/val/test splits: resolve their names, one shared ClassLabel, a stratified holdout and caps."""

from __future__ import annotations

from trainer.config import DataConfig
from trainer.data.sources import VAL_NAMES
from trainer.errors import UserError


def split_names(raw, cfg: DataConfig) -> tuple[str, str | None, str | None]:
    """Resolve train/val/test split names against what the source has."""
    have = list(raw)
    for flag, name in (("--train-split", cfg.train_split), ("--val-split", cfg.val_split),
                       ("--test-split", cfg.test_split)):
        if name is not None and name not in raw:
            raise UserError(f"{flag} {name!r} not found; the dataset has splits {have}.")
    val = cfg.val_split or next((s for s in VAL_NAMES if s in raw and s != cfg.train_split), None)
    test = cfg.test_split or ("test" if "test" in raw and cfg.train_split != "test" else None)
    return cfg.train_split, val, test


def encode_labels(splits: dict, label: str) -> list[str]:
    """Cast the label column of every split to one shared ClassLabel; return the label names."""
    import datasets

    feat = splits["train"].features[label]
    if isinstance(feat, datasets.ClassLabel):
        return list(feat.names)
    values = sorted({v for v in splits["train"].unique(label) if v is not None}, key=lambda v: (str(type(v)), v))
    if not values:
        raise UserError(f"label column {label!r} of the train split holds no labels.")
    names = [str(v) for v in values]
    for split_name, ds in splits.items():
        unseen = sorted({str(v) for v in ds.unique(label)} - set(names))
        if unseen:
            raise UserError(f"split {split_name!r} has labels never seen in train: {unseen[:10]}. "
                            "Add training samples of those classes or drop them from that split.")
    class_label = datasets.ClassLabel(names=names)
    index = {v: i for i, v in enumerate(values)}
    for split_name, ds in splits.items():
        ds = ds.map(lambda b: {label: [index[v] for v in b[label]]}, batched=True, desc=f"encode {split_name}")
        splits[split_name] = ds.cast_column(label, class_label)
    return names


def label_array(ds, label: str) -> "np.ndarray":  # noqa: F821
    """The label column as one numpy array (a Column iterates row by row: 100x slower)."""
    import numpy as np

    return np.asarray(ds.select_columns([label]).with_format("numpy")[:][label], dtype=np.int64)


def stratified_holdout(train, label: str, pct: float, seed: int, label_names: list[str]):
    """Stratified train/val split; explains classes too small to stratify."""
    import numpy as np

    counts = np.bincount(label_array(train, label), minlength=len(label_names))
    lonely = [label_names[y] for y, n in enumerate(counts) if n == 1]
    if lonely:
        raise UserError(f"class(es) {lonely[:10]} have only 1 sample, so a stratified validation split is "
                        "impossible. Add samples, remove the class, or give a validation split (--val-split).")
    parts = train.train_test_split(test_size=pct, stratify_by_column=label, seed=seed)
    return parts["train"], parts["test"]


def stratified_cap(ds, n: int | None, label: str, seed: int):
    """A stratified subset of at most n rows (all rows when n is None or larger)."""
    if n is None or n >= len(ds):
        return ds
    try:
        return ds.train_test_split(train_size=n, stratify_by_column=label, seed=seed)["train"]
    except ValueError:  # too few per class to stratify: fall back to a seeded shuffle
        return ds.shuffle(seed=seed).select(range(n))




MAX_GROUPS = 100  # a per-group table beyond this is a per-row dump, not a report


def check_group_column(splits: dict, column: str) -> None:
    """--group-column must name a column of val (and test) with at most MAX_GROUPS distinct values."""
    for name in ("val", "test"):
        ds = splits.get(name)
        if ds is None:
            continue
        if column not in ds.column_names:
            raise UserError(f"--group-column {column!r} is not a column of the {name} split; its columns are "
                            f"{ds.column_names}.")
        distinct = len(set(map(str, ds[column])))
        if distinct > MAX_GROUPS:
            raise UserError(f"--group-column {column!r} has {distinct} distinct values in the {name} split; "
                            f"per-group metrics take at most {MAX_GROUPS}: pick a coarser column.")
