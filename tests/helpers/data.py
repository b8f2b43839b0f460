"""Tiny datasets written on the fly for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_imagefolder(root: Path, counts: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """An imagefolder tree root/<class>/<i>.png of small images whose colour depends on the class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, (name, n) in enumerate(sorted(counts.items())):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            base = np.full((size, size, 3), 40 + 50 * c, dtype=np.int16)
            img = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root
