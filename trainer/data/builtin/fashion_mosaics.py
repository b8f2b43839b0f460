"""Fashion-MNIST mosaics: a SYNTHETIC multi-label dataset made from real images, cached as Arrow.

Each 56×56 image is a 2×2 grid of Fashion-MNIST cells; a cell holds an item with probability FILL (at least one
per mosaic) and is black otherwise. The labels are the classes of the items it holds (`List(ClassLabel)`). Train
mosaics are cut from the train split of the Debian package dataset-fashion-mnist, test mosaics from its test split,
so no item of a test mosaic was seen in training; within a split each item appears in one mosaic at most.
Synthetic: real multi-label photos mix scale, occlusion and context, which a grid of centred items does not; it
exercises the multi-label path end to end on a CPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from trainer.data.builtin.fashion_mnist import FASHION_MNIST_DIR, FASHION_MNIST_LABELS, fashion_mnist_arrays
from trainer.errors import UserError
from trainer.paths import cache_dir

SIZES = {"train": 20_000, "test": 4_000}
VERSION = "v2"  # of the Arrow build: bump it when the rows change (it names the cache; the manifest records it)
FILL = 0.6  # probability that a cell holds an item: 2.4 items, about 2.2 distinct classes per mosaic
SEED = 0
CELL = 28


def mosaics(images: np.ndarray, labels: np.ndarray, n: int, seed: int,
            classes: list[int] | None = None) -> tuple[np.ndarray, list[list[int]]]:
    """(uint8 mosaics (n, 56, 56), the sorted class ids each holds) from (N, 28, 28) items and their labels; only
    items of `classes` (ids into `labels`, renumbered 0.. in that order) when given."""
    rng = np.random.default_rng(seed)
    classes = list(range(int(labels.max()) + 1)) if classes is None else list(classes)
    new_id = {c: i for i, c in enumerate(classes)}
    pool = np.flatnonzero(np.isin(labels, classes))
    filled = rng.random((n, 4)) < FILL
    empty = ~filled.any(1)
    filled[np.flatnonzero(empty), rng.integers(0, 4, int(empty.sum()))] = True  # every mosaic holds an item
    # each item in at most one mosaic (while the split has enough): no two mosaics are identical, so a holdout
    # from the train mosaics shares no image with what is left for training
    picks = np.zeros((n, 4), dtype=np.int64)
    picks[filled] = rng.choice(pool, size=int(filled.sum()), replace=int(filled.sum()) > len(pool))
    canvas = np.zeros((n, 2 * CELL, 2 * CELL), dtype=np.uint8)
    for k in range(4):
        r, c = divmod(k, 2)
        rows = filled[:, k]
        canvas[rows, r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL] = images[picks[rows, k]]
    ids = [sorted({new_id[int(labels[picks[i, k]])] for k in range(4) if filled[i, k]}) for i in range(n)]
    return canvas, ids


def mosaic_dataset(sizes: dict[str, int], seed: int = SEED, classes: list[int] | None = None):
    """A DatasetDict of mosaics per split ({split: rows}), Image + List(ClassLabel) features."""
    import datasets

    names = [FASHION_MNIST_LABELS[c] for c in (classes or range(len(FASHION_MNIST_LABELS)))]
    features = datasets.Features({"image": datasets.Image(), "labels": datasets.List(datasets.ClassLabel(names=names))})
    out = {}
    for i, (split, n) in enumerate(sizes.items()):
        images, labels = fashion_mnist_arrays(split)
        canvas, ids = mosaics(images, labels, n, seed + i, classes)
        out[split] = datasets.Dataset.from_dict({"image": list(canvas), "labels": ids}, features=features)
    return datasets.DatasetDict(out)


def load_fashion_mosaics():
    """The mosaics as a DatasetDict (train 20k / test 4k), building the Arrow cache on first use."""
    import datasets

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        raise UserError(f"Fashion-MNIST not found under {FASHION_MNIST_DIR}; install it with "
                        "`apt-get install dataset-fashion-mnist` (or run `make install`).")
    target: Path = cache_dir("datasets") / f"fashion-mosaics-{VERSION}"
    if not (target / "dataset_dict.json").exists():
        print(f"building the Fashion-MNIST mosaics Arrow cache in {target} (one time) ...", flush=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        mosaic_dataset(SIZES).save_to_disk(str(tmp))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return datasets.load_from_disk(str(target))
