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


def _unlabeled_mask(ds, label: str, num_classes: int | None) -> "np.ndarray":  # noqa: F821
    """True where a row has no usable label: None, or an integer < 0 (or >= num_classes for a ClassLabel)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = ds.select_columns([label]).with_format("arrow")[:][label]
    bad = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(column.type):
        values = pc.fill_null(column, 0)
        bad |= np.asarray(pc.less(values, 0).to_numpy(zero_copy_only=False), dtype=bool)
        if num_classes is not None:
            bad |= np.asarray(pc.greater_equal(values, num_classes).to_numpy(zero_copy_only=False), dtype=bool)
    return bad


def check_labels(splits: dict, label: str, drop: bool) -> None:
    """Count rows without a usable label per split; refuse them with the counts, or drop them (--drop-unlabeled)."""
    import datasets
    import numpy as np

    feat = next(iter(splits.values())).features[label]
    num_classes = feat.num_classes if isinstance(feat, datasets.ClassLabel) else None
    counts = {}
    for name, ds in splits.items():
        bad = _unlabeled_mask(ds, label, num_classes)
        if bad.any():
            counts[name] = int(bad.sum())
            if drop:
                splits[name] = ds.select(np.flatnonzero(~bad))
    if not counts:
        return
    described = ", ".join(f"{name}: {n:,} of {len(splits[name]) + (n if drop else 0):,}" for name, n in counts.items())
    if not drop:
        raise UserError(f"rows without a usable label in column {label!r} ({described}): None, a negative value "
                        "(-1 means 'no label' in datasets)" + (f" or a value >= {num_classes}" if num_classes else "")
                        + ". Pass --drop-unlabeled to drop them, or point --test-split/--val-split at labelled "
                        "splits.")
    print(f"warning: dropped rows without a usable label ({described}); --drop-unlabeled", flush=True)
    for name, ds in splits.items():
        if len(ds) == 0:
            raise UserError(f"split {name!r} has no labelled rows left after --drop-unlabeled.")


def check_classes(train, label: str, label_names: list[str]) -> None:
    """A classifier needs at least two classes, and the train split must hold at least two of them."""
    import numpy as np

    present = np.unique(label_array(train, label))
    if len(label_names) < 2 or len(present) < 2:
        only = [label_names[i] for i in present[:1]] or label_names[:1]
        raise UserError(f"the train split holds one class only ({only}): a classifier needs at least two. "
                        "Check --label-column, or add samples of the other classes.")


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
