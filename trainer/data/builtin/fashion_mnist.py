"""Fashion-MNIST from the Debian package dataset-fashion-mnist, cached as Arrow."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np

from trainer.errors import UserError
from trainer.paths import cache_dir

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
VERSION = "v1"  # of the Arrow build: bump it when the rows change (it names the cache; the manifest records it)
# Class names and order from Zalando's Fashion-MNIST README (the labels 0..9 in the IDX files).
FASHION_MNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (the MNIST container format) into a numpy array."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 28, 28), uint8 labels (N,)) of the 'train' or 'test' split, straight from the IDX files."""
    prefix = {"train": "train", "test": "t10k"}[split]
    return (_read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"),
            _read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"))


def _build_fashion_mnist(target: Path) -> None:
    """Decode the IDX files into a DatasetDict with Image + ClassLabel features and save it as Arrow."""
    import datasets

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=FASHION_MNIST_LABELS)})
    splits = {}
    for split in ("train", "test"):
        images, labels = fashion_mnist_arrays(split)
        # datasets encodes uint8 HxW arrays as grayscale PNG bytes.
        splits[split] = datasets.Dataset.from_dict(
            {"image": list(images), "label": labels.astype(np.int64)}, features=features)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.DatasetDict(splits).save_to_disk(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)




def load_fashion_mnist():
    """Fashion-MNIST as a DatasetDict (train 60k / test 10k), building its Arrow cache on first use."""
    import datasets

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        raise UserError(f"Fashion-MNIST not found under {FASHION_MNIST_DIR}; install it with "
                        "`apt-get install dataset-fashion-mnist` (or run `make install`).")
    target = cache_dir("datasets") / f"fashion-mnist-{VERSION}"
    if not (target / "dataset_dict.json").exists():
        print(f"building the Fashion-MNIST Arrow cache in {target} (one time) ...", flush=True)
        _build_fashion_mnist(target)
    return datasets.load_from_disk(str(target))
