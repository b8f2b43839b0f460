"""Iterative stratification of multi-label data (Sechidis, Tsoumakas & Vlahavas 2011, "On the Stratification of
Multi-Label Data", ECML PKDD, LNCS 6913): the holdout, the caps and the --folds of a multi-hot target matrix.

scikit-learn's StratifiedKFold / StratifiedShuffleSplit and datasets' `stratify_by_column` take one class per row;
the PyPI `iterative-stratification` package implements this algorithm on scikit-learn's private splitter classes
and installs a stray top-level `tests` package, so the algorithm (short) is written here.

The algorithm: each subset j wants r_j x N rows and r_j x N_l positives of each label l. Repeatedly take the label
with the fewest (but some) rows left; deal each of its rows to the subset that still wants most positives of that
label (ties: the subset that wants most rows, then a seeded random pick); count the row against every label it
holds. Rows without any label go last, each to the subset that wants most rows. Rows are visited in a seeded
random order, so a seed gives one split, and a different seed another.
"""

from __future__ import annotations

import math

import numpy as np


def _pick(wanted: np.ndarray, rows_wanted: np.ndarray, rng: np.random.Generator) -> int:
    """The subset that wants most of `wanted`, ties broken by most rows wanted, then at random."""
    best = np.flatnonzero(wanted == wanted.max())
    if len(best) > 1:
        best = best[rows_wanted[best] == rows_wanted[best].max()]
    return int(best[0] if len(best) == 1 else best[rng.integers(len(best))])


def iterative_stratification(targets: np.ndarray, ratios, seed: int) -> np.ndarray:
    """The subset (0 .. len(ratios) - 1) of each row of an (N, L) multi-hot matrix, sized by ratios (summing to 1),
    every label's positives shared out in the same ratios; deterministic for a seed."""
    targets = np.asarray(targets, dtype=bool)
    ratios = np.asarray(ratios, dtype=np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(targets))
    y = targets[order]
    rows_wanted = ratios * len(y)
    label_wanted = np.outer(ratios, y.sum(0))
    subset = np.full(len(y), -1, dtype=np.int64)
    left = y.sum(0).astype(np.int64)  # positives of each label not yet dealt
    labels_of = [np.flatnonzero(row) for row in y]
    while left.any():
        fewest = np.flatnonzero(left == left[left > 0].min())
        label = int(fewest[0] if len(fewest) == 1 else fewest[rng.integers(len(fewest))])
        for i in np.flatnonzero(y[:, label] & (subset < 0)):
            j = _pick(label_wanted[:, label], rows_wanted, rng)
            subset[i] = j
            label_wanted[j, labels_of[i]] -= 1
            rows_wanted[j] -= 1
            left[labels_of[i]] -= 1
    for i in np.flatnonzero(subset < 0):  # rows with no label (--allow-empty-labels)
        j = _pick(rows_wanted, rows_wanted, rng)
        subset[i] = j
        rows_wanted[j] -= 1
    out = np.empty_like(subset)
    out[order] = subset
    return out


def stratified_split(targets: np.ndarray, test_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest rows, test rows), both sorted: test_size a fraction of the rows (rounded up) or a row count. Sizes
    may differ from it by a few rows, where stratifying every label asks for it."""
    n = len(targets)
    n_test = math.ceil(test_size * n) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"test_size {test_size} leaves no rows on one side of {n}")
    subset = iterative_stratification(targets, [(n - n_test) / n, n_test / n], seed)
    return np.flatnonzero(subset == 0), np.flatnonzero(subset == 1)


def stratified_kfold(targets: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, val rows) of each of `folds` folds, every row in exactly one val part; sorted indices."""
    subset = iterative_stratification(targets, np.full(folds, 1 / folds), seed)
    return [(np.flatnonzero(subset != k), np.flatnonzero(subset == k)) for k in range(folds)]
