"""Embedded datasets: real data that ships inside Debian packages, as `datasets.DatasetDict` (cached as Arrow)."""

from __future__ import annotations

from trainer.errors import UserError

EMBEDDED = {"fashion-mnist": "Debian package dataset-fashion-mnist (Zalando Fashion-MNIST, MIT license)",
            "spoken-digits": "zero..nine synthesized by Debian's espeak-ng in 7 accents, split by voice and accent "
                             "(trainer/data/builtin/spoken_digits.py)",
            "fashion-mosaics": "SYNTHETIC multi-label: 2x2 mosaics of Fashion-MNIST items labelled with the classes "
                               "they hold (trainer/data/builtin/fashion_mosaics.py)"}


def load_embedded(name: str):
    """The embedded dataset `name` as a DatasetDict, building its Arrow cache on first use."""
    # imported on use: `python -m trainer.data.builtin.<name>` then runs a module not yet imported by the package
    if name == "spoken-digits":
        from trainer.data.builtin.spoken_digits import load_spoken_digits

        return load_spoken_digits()
    if name == "fashion-mnist":
        from trainer.data.builtin.fashion_mnist import load_fashion_mnist

        return load_fashion_mnist()
    if name == "fashion-mosaics":
        from trainer.data.builtin.fashion_mosaics import load_fashion_mosaics

        return load_fashion_mosaics()
    raise UserError(f"unknown embedded dataset {name!r}; embedded: {sorted(EMBEDDED)}.")
