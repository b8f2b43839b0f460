"""Iterative stratification (trainer/data/stratify.py): every row in one subset, every label's positives shared
out in the subsets' ratios, better than a random split, deterministic by seed."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.data.stratify import iterative_stratification, stratified_kfold, stratified_split


def _targets(n: int = 1000, seed: int = 0) -> np.ndarray:
    """n rows of 6 correlated labels from common to rare (50 % to 1 %), some rows with none."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, 6)) < [0.5, 0.3, 0.15, 0.06, 0.03, 0.01]
    y[:, 1] |= y[:, 0] & (rng.random(n) < 0.2)  # co-occurrence: label 1 often comes with label 0
    return y.astype(np.uint8)


def test_kfold_puts_every_row_in_one_fold_and_shares_out_every_label():
    y = _targets()
    folds = stratified_kfold(y, 5, seed=0)
    vals = [val for _, val in folds]
    assert sorted(np.concatenate(vals).tolist()) == list(range(len(y)))  # each row in exactly one val part
    for train, val in folds:
        assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(y)))
        assert np.abs(y[val].sum(0) - y.sum(0) / 5).max() <= 1  # positives per label: a fifth, to one row
        assert abs(len(val) - len(y) / 5) <= 0.02 * len(y)
        np.testing.assert_allclose(y[val].mean(0), y.mean(0), atol=0.01)


def test_better_than_a_random_split_on_rare_labels():
    y = _targets()
    ours = np.abs(np.array([y[val].sum(0) for _, val in stratified_kfold(y, 5, seed=3)]) - y.sum(0) / 5)
    random_fold = np.random.default_rng(3).permutation(len(y)) % 5
    chance = np.abs(np.array([y[random_fold == k].sum(0) for k in range(5)]) - y.sum(0) / 5)
    assert ours.max() <= 1 < chance.max()


def test_deterministic_for_a_seed_and_different_for_another():
    y = _targets(400, seed=1)
    a, b = stratified_split(y, 0.2, seed=7), stratified_split(y, 0.2, seed=7)
    assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    assert not np.array_equal(a[1], stratified_split(y, 0.2, seed=8)[1])
    assert np.array_equal(a[1], np.sort(a[1])) and not set(a[0]) & set(a[1])


def test_holdout_sizes_from_a_fraction_or_a_count_and_rows_without_labels_spread_evenly():
    y = _targets(500, seed=2)
    rest, test = stratified_split(y, 0.3, seed=0)
    assert len(rest) + len(test) == 500 and abs(len(test) - 150) <= 10
    assert len(stratified_split(y, 50, seed=0)[1]) == pytest.approx(50, abs=5)
    empty = np.zeros((90, 3), dtype=np.uint8)  # no labels at all: the rows alone decide, so sizes are exact
    assert np.bincount(iterative_stratification(empty, [1 / 3] * 3, seed=0)).tolist() == [30, 30, 30]
    with pytest.raises(ValueError, match="no rows on one side"):
        stratified_split(y, 500, seed=0)
