"""Embedded datasets: real data that ships inside Debian packages, as `datasets.DatasetDict` (cached as Arrow)."""

from __future__ import annotations

from trainer.data.builtin.fashion_mnist import load_fashion_mnist
from trainer.data.builtin.spoken_digits import load_spoken_digits
from trainer.errors import UserError

EMBEDDED = {"fashion-mnist": "Debian package dataset-fashion-mnist (Zalando Fashion-MNIST, MIT license)",
            "spoken-digits": "zero..nine synthesized by Debian's espeak-ng, split by voice "
                             "(trainer/data/builtin/spoken_digits.py)"}


def load_embedded(name: str):
    """The embedded dataset `name` as a DatasetDict, building its Arrow cache on first use."""
    if name == "spoken-digits":
        return load_spoken_digits()
    if name == "fashion-mnist":
        return load_fashion_mnist()
    raise UserError(f"unknown embedded dataset {name!r}; embedded: {sorted(EMBEDDED)}.")
