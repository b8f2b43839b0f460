"""Multi-label data: which label columns hold several classes per row, one shared `List(ClassLabel)` encoding, the
multi-hot target matrix, and iterative stratification for the holdout, the caps and --folds.

A label column is multi-label when its feature is a list (`List(ClassLabel)`, `List(Value)`: a metadata.jsonl
of label lists gives one), or with --multi-label, where a string column is split on --label-sep (a metadata.csv
cell "Bag,Trouser"). Stratification is iterative (Sechidis et al. 2011, trainer/data/stratify.py); datasets'
`stratify_by_column` and scikit-learn's StratifiedKFold take one class per row only.
"""

from __future__ import annotations

import numpy as np

from trainer.config import DataConfig
from trainer.data.stratify import stratified_kfold, stratified_split
from trainer.errors import UserError


def is_list_feature(feature) -> bool:
    """Whether a datasets feature holds a list per row (datasets 5 `List`, `LargeList`; `Sequence` builds a List)."""
    import datasets

    return isinstance(feature, datasets.List | datasets.LargeList)


def is_multi_label(features, label: str, cfg: DataConfig) -> bool:
    """Whether the label column gives several classes per row: a list feature, or --multi-label."""
    return cfg.multi_label or is_list_feature(features[label])


def _row_names(ds, label: str, sep: str) -> list[list[str] | None]:
    """Each row's class names as strings (None where the value is missing): lists of ClassLabel ids, of values,
    or separated strings."""
    import datasets

    feature = ds.features[label]
    inner = getattr(feature, "feature", None)
    values = ds.select_columns([label]).with_format("python")[:][label]
    out: list[list[str] | None] = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, str):
            out.append([part.strip() for part in value.split(sep) if part.strip()])
        elif isinstance(value, list):
            if isinstance(inner, datasets.ClassLabel):
                bad = [v for v in value if v is None or not 0 <= v < inner.num_classes]
                if bad:
                    raise UserError(f"label column {label!r} holds ids {bad[:5]} outside its {inner.num_classes} "
                                    "class names (-1 means 'no label' in datasets; drop those ids from the lists).")
                value = [inner.int2str(v) for v in value]
            out.append([str(v) for v in value if v is not None])
        elif isinstance(feature, datasets.ClassLabel):  # --multi-label on a one-class column: a list of one
            out.append([feature.int2str(value)] if value >= 0 else None)  # -1: 'no label' in datasets
        else:
            out.append([str(value)])
    return out


def _class_names(train_rows: list, feature) -> list[str]:
    """The classes: a List(ClassLabel)'s own names in its order (as for a ClassLabel column), else the names seen in
    train, sorted as text."""
    import datasets

    inner = getattr(feature, "feature", feature)
    if isinstance(inner, datasets.ClassLabel):
        return list(inner.names)
    return sorted({name for row in train_rows if row for name in row})


def encode_multilabels(splits: dict, label: str, cfg: DataConfig) -> list[str]:
    """Cast the label column of every split to one `List(ClassLabel)` (the class names seen in train); rows with
    no label (None, an empty list or string) are refused, dropped (--drop-unlabeled) or kept as 'none of the
    classes' (--allow-empty-labels). Returns the class names."""
    import datasets

    rows = {name: _row_names(ds, label, cfg.label_sep) for name, ds in splits.items()}
    empty = {name: [i for i, r in enumerate(v) if not r] for name, v in rows.items()}
    if any(empty.values()) and not cfg.allow_empty_labels:
        described = ", ".join(f"{name}: {len(i):,} of {len(rows[name]):,}" for name, i in empty.items() if i)
        if not cfg.drop_unlabeled:
            raise UserError(f"rows with no label in the multi-label column {label!r} ({described}): an empty list, "
                            "an empty string or None. Pass --allow-empty-labels if they mean 'none of the classes' "
                            "(all-negative targets), or --drop-unlabeled to drop them.")
        print(f"warning: dropped rows with no label ({described}); --drop-unlabeled", flush=True)
        for name, drop in empty.items():
            if drop:
                keep = np.setdiff1d(np.arange(len(rows[name])), drop)
                splits[name] = splits[name].select(keep)
                rows[name] = [rows[name][i] for i in keep]
                if len(keep) == 0:
                    raise UserError(f"split {name!r} has no labelled rows left after --drop-unlabeled.")
    names = _class_names(rows["train"], splits["train"].features[label])
    if len({n for r in rows["train"] if r for n in r}) < 2:
        raise UserError(f"the train split's multi-label column {label!r} holds fewer than two classes (of "
                        f"{names[:10]}): a classifier needs at least two. Check --label-column and --label-sep.")
    index = {n: i for i, n in enumerate(names)}
    for name, split_rows in rows.items():
        unseen = sorted({n for r in split_rows if r for n in r} - set(names))
        if unseen:
            raise UserError(f"split {name!r} has labels never seen in train: {unseen[:10]}. Add training samples "
                            "of those classes or drop them from that split.")
    feature = datasets.List(datasets.ClassLabel(names=names))
    for name, ds in splits.items():
        ids = [sorted({index[n] for n in r}) if r else [] for r in rows[name]]
        splits[name] = ds.remove_columns(label).add_column(label, ids, feature=feature)
    return names


def label_matrix(ds, label: str, num_classes: int) -> np.ndarray:
    """The `List(ClassLabel)` column as an (N, num_classes) uint8 multi-hot matrix (from Arrow, no Python loop)."""
    import pyarrow.compute as pc

    column = ds.select_columns([label]).with_format("arrow")[:][label].combine_chunks()
    out = np.zeros((len(column), num_classes), dtype=np.uint8)
    parents = np.asarray(pc.list_parent_indices(column).to_numpy(zero_copy_only=False), dtype=np.int64)
    ids = np.asarray(pc.list_flatten(column).to_numpy(zero_copy_only=False), dtype=np.int64)
    out[parents, ids] = 1
    return out


def multilabel_holdout(train, label: str, pct: float, seed: int, num_classes: int) -> tuple:
    """(train, val) held out by iterative stratification: every class keeps about its share of positives in both."""
    targets = label_matrix(train, label, num_classes)
    lonely = np.flatnonzero(targets.sum(0) == 1)
    if len(lonely):
        names = train.features[label].feature.names
        raise UserError(f"class(es) {[names[i] for i in lonely[:10]]} occur in only 1 training row, so a stratified "
                        "validation split cannot hold them in both. Add samples, or give a validation split "
                        "(--val-split).")
    keep, held = stratified_split(targets, float(pct), seed)
    return train.select(keep), train.select(held)


def multilabel_cap(ds, n: int | None, label: str, seed: int, num_classes: int):
    """An iteratively stratified subset of at most n rows (all rows when n is None or larger)."""
    if n is None or n >= len(ds):
        return ds
    _rest, kept = stratified_split(label_matrix(ds, label, num_classes), int(n), seed)
    if len(kept) > n:  # stratifying every label may deal a few rows more: trim them, seeded
        kept = np.sort(np.random.default_rng(seed).permutation(kept)[:n])
    return ds.select(kept)


def multilabel_folds(targets: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, val rows) of each fold: iteratively stratified K-fold."""
    return stratified_kfold(targets, folds, seed)
