"""A new user's folder of photos, trained with nothing but --dataset and --output-dir: does the run end within the
budget it announced, and what did its choices cost?

The folder: ~3,000 JPEG photos of 400x533 px in 10 classes, imbalanced x7 (train/), plus 50 per class as test/.
Each class is one real photograph from Debian's `mate-backgrounds` (its nature/ set, GPL-2+), cut into random
portrait crops (30-100 % of the short side), recoloured (hue, saturation, brightness), sometimes mirrored and
re-encoded as JPEG at quality 70-92 — real photo statistics and file sizes, a synthetic task. Then

    python trainer/train.py --dataset DIR --output-dir OUT

runs as it is (`--taskset 0` pins it to one core), and bench/results/photo_folder_<date>.json records the announced
budget, the wall time, the choices printed, the per-phase table of manifest.json and the test accuracy.

    python bench/bench_photo_folder.py [--work /tmp/timm-space-photos] [--taskset 0]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bench.report import save_result, train_new_folder  # noqa: E402
from trainer.errors import scrub_artifact  # noqa: E402

SOURCE = Path("/usr/share/backgrounds/mate/nature")  # Debian package mate-backgrounds
CLASSES = ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
           "TwoWings")
SIZE = (400, 533)  # width, height: a phone photo scaled down, portrait
LARGEST, IMBALANCE, TEST_PER_CLASS = 700, 7.0, 50


def counts() -> list[int]:
    """Train images per class: geometric from LARGEST / IMBALANCE to LARGEST (~2,900 in all)."""
    return [round(LARGEST / IMBALANCE * IMBALANCE ** (k / (len(CLASSES) - 1))) for k in range(len(CLASSES))]


def crop(photo, rng: np.random.Generator):
    """One random portrait crop of `photo`, recoloured, maybe mirrored, at SIZE."""
    from PIL import Image, ImageEnhance

    w, h = photo.size
    ch = int(rng.uniform(0.3, 1.0) * min(h, w * SIZE[1] / SIZE[0]))
    cw = int(ch * SIZE[0] / SIZE[1])
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = photo.crop((x, y, x + cw, y + ch)).resize(SIZE, Image.Resampling.BICUBIC)
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.integers(-12, 13))) % 256  # a small hue turn
    image = Image.fromarray(hsv, "HSV").convert("RGB")
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def write_folder(root: Path, seed: int = 0) -> Path:
    """root/train/<class>/<i>.jpg (imbalanced) and root/test/<class>/<i>.jpg; kept when already complete."""
    from PIL import Image

    done = root / ".complete"
    if done.exists():
        return root
    if not SOURCE.is_dir():
        raise SystemExit(f"{SOURCE} is missing: install the Debian package mate-backgrounds")
    rng = np.random.default_rng(seed)
    for name, n in zip(CLASSES, counts(), strict=True):
        with Image.open(SOURCE / f"{name}.jpg") as photo:
            photo = photo.convert("RGB")
            for split, m in (("train", n), ("test", TEST_PER_CLASS)):
                folder = root / split / name.lower()
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(m):
                    crop(photo, rng).save(folder / f"{i}.jpg", quality=int(rng.integers(70, 93)))
    done.touch()
    return root


def main() -> None:
    """CLI: write the folder, run the trainer on it with no other flag, record what happened."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/timm-space-photos"))
    parser.add_argument("--taskset", help="run the trainer pinned to these cores (taskset -c), e.g. 0")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    data = write_folder(args.work / "photos")
    run = args.work / "run"
    stdout, wall = train_new_folder(data, run, ["taskset", "-c", args.taskset] if args.taskset else None)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    budget_s = manifest["time_budget"]["budget_s"]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    result = {"date": date.today().isoformat(), "dataset": f"{sum(counts())} photos of {SIZE[0]}x{SIZE[1]} px in "
              f"{len(CLASSES)} classes (imbalance x{IMBALANCE:g}), {TEST_PER_CLASS} per class as test/",
              "command": ("taskset -c " + args.taskset + " " if args.taskset else "")
              + "python trainer/train.py --dataset DIR --output-dir OUT",
              "cpu": cpu, "usable_cores": manifest["time_budget"]["cores"], "wall_s": round(wall, 1),
              "budget_s": budget_s, "off_budget_pct": round(100 * (wall / budget_s - 1), 1),
              "test_accuracy": metrics["test"]["accuracy"], "val_accuracy": metrics["val"]["accuracy"],
              "choices": [line for line in stdout.splitlines()
                          if line.startswith("chose ") or re.match(r"(time budget: |linear probe: |lr_find: )", line)],
              "time_budget": manifest["time_budget"], "img_size": manifest["config"]["model"]["img_size"],
              "lr": manifest["config"]["optim"]["lr"]}
    save_result(scrub_artifact(result), args.out, "photo_folder" + ("_one_core" if args.taskset else ""))


if __name__ == "__main__":
    main()
