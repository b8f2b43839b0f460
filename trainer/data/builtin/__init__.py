"""Embedded datasets: real data that ships inside Debian packages, as `datasets.DatasetDict` (cached as Arrow)."""

from __future__ import annotations

from trainer.errors import UserError

EMBEDDED = {"fashion-mnist": "Debian package dataset-fashion-mnist (Zalando Fashion-MNIST, MIT license)",
            "spoken-digits": "zero..nine synthesized by Debian's espeak-ng in 7 accents, split by voice and accent "
                             "(trainer/data/builtin/spoken_digits.py)",
            "fashion-mosaics": "SYNTHETIC multi-label: 2x2 mosaics of Fashion-MNIST items labelled with the classes "
                               "they hold (trainer/data/builtin/fashion_mosaics.py)"}
SOURCE_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist", "spoken-digits": "espeak-ng",
                   "fashion-mosaics": "dataset-fashion-mnist"}  # the Debian package each one is made from


def embedded_version(name: str) -> str:
    """The release of embedded dataset `name`, for the manifest: its build version and the installed version of
    the Debian package it is made from (dpkg-query), e.g. "v1 (dataset-fashion-mnist 0.0~git20200523.55506a9-1)"."""
    import subprocess

    from trainer.data.builtin import fashion_mnist, fashion_mosaics, spoken_digits

    builders = {"fashion-mnist": fashion_mnist, "spoken-digits": spoken_digits, "fashion-mosaics": fashion_mosaics}
    build = builders[name].VERSION  # the builder's own version, which also names its Arrow cache
    package = SOURCE_PACKAGES[name]
    try:
        found = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # not a Debian system: the build version alone
        found = ""
    return f"{build} ({package} {found or 'version unknown'})"


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
