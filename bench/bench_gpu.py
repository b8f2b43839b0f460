"""GPU benchmark that needs one CUDA GPU and torch + timm + accelerate only (no datasets, no gradio); its data comes
as uint8 .npy files.

  a  ours vs timm train.py   same images (a PNG folder written from the .npy for timm), model, batch, bf16 AMP,
                             channels_last, optimizer and augmentation flags
  b  real vs synthetic       the .npy through our decode-once path vs one fixed on-device batch
  d  fast path vs eager      our CUDA defaults (bf16, channels_last, fused AdamW) + --torch-compile vs fp32 NCHW
  (c, 1 vs N processes, needs N GPUs: bench_train.py --scenarios c runs it through accelerate launch.)

Same instrument and alternation as bench_train.py (step log lines stamped on arrival, median of --repeats).
First, on a machine with the full install: `python bench/bench_gpu.py --export bench/results/tmp/gpu_data` writes
Fashion-MNIST train as images.npy + labels.npy (47 MB), to copy to the GPU machine beside the repository.

    python bench/bench_gpu.py --data bench/results/tmp/gpu_data --timm-train timm_train.py [--model resnet50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_train import OURS_STEP, RESULTS, TIMM_STEP, run_and_save, run_env, timm_flags  # noqa: E402

WORK = RESULTS / "tmp" / "bench_gpu"


def export(target: Path) -> None:
    """Fashion-MNIST train (60,000 uint8 28x28 + labels) as .npy files, from the Debian package's IDX files."""
    from trainer.data.builtin.fashion_mnist import fashion_mnist_arrays

    images, labels = fashion_mnist_arrays("train")
    target.mkdir(parents=True, exist_ok=True)
    np.save(target / "images.npy", images)
    np.save(target / "labels.npy", labels)
    print(f"wrote {target}/images.npy {images.shape} and labels.npy")


def png_folder(data: Path, n: int) -> Path:
    """The first n images as folder/train/<label>/<i>.png (+ a small validation/) for timm's ImageFolder."""
    from PIL import Image

    folder = WORK / f"png_{n}"
    if (folder / ".done").exists():
        return folder
    images, labels = np.load(data / "images.npy"), np.load(data / "labels.npy")
    for split, rows in (("train", range(n)), ("validation", range(n, n + 512))):
        for i in rows:
            d = folder / split / str(int(labels[i]))
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(d / f"{i:05d}.png")
    (folder / ".done").touch()
    return folder


def flags(args) -> list[str]:
    """Our trainer flags shared by every side."""
    return ["--model", args.model, "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
            "--max-steps", str(args.steps), "--log-interval", str(args.log_interval), "--opt", "adamw",
            "--lr", "1e-3", "--weight-decay", "0.05", "--smoothing", "0.1", "--scale", "0.08", "1"]


def timm_side(args, folder: Path) -> list[str]:
    """timm train.py with bench_train.py's shared flags plus bf16 AMP and pinned memory, as our CUDA default."""
    return [sys.executable, args.timm_train, *timm_flags(args, folder, WORK / "timm_out", scale="0.08",
                                                         extra=("--amp", "--amp-dtype", "bfloat16", "--pin-mem"))]


def scenarios(args) -> dict:
    """{key: (title, target, side A, side B)} as in bench_train.py."""
    ours = [sys.executable, "bench/gpu_worker.py", "--images", str(args.data / "images.npy"),
            "--labels", str(args.data / "labels.npy"), *flags(args)]
    bs, env = args.batch_size, run_env()
    specs = {
        "b": ("real .npy data vs synthetic tensors (ours)", 0.9,
              ("real", ours, OURS_STEP, bs, env), ("synthetic", [*ours, "--synthetic"], OURS_STEP, bs, env)),
        "d": ("fast path (+ --torch-compile) vs fp32 NCHW eager (ours)", None,
              ("fast path", [*ours, "--torch-compile"], OURS_STEP, bs, env),
              ("fp32 NCHW eager", [*ours, "--mixed-precision", "no", "--no-channels-last"], OURS_STEP, bs, env)),
    }
    if args.timm_train:
        folder = png_folder(args.data, args.batch_size * (args.steps + 2))
        specs["a"] = ("ours vs timm train.py (bf16, channels_last)", 1.05, ("ours", ours, OURS_STEP, bs, env),
                      ("timm", timm_side(args, folder), TIMM_STEP, bs, env))
    return specs


def main() -> None:
    """Export data, or run the chosen scenarios and write bench/results/train_gpu_<date>.json."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export", type=Path, help="write images.npy + labels.npy here and exit")
    p.add_argument("--data", type=Path, default=RESULTS / "tmp" / "gpu_data")
    p.add_argument("--timm-train", help="timm's train.py (fetched snapshot) for scenario a")
    p.add_argument("--scenarios", nargs="+", default=["a", "b", "d"], choices=["a", "b", "d"])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("--warmup-steps", type=int, default=30, help="skipped: cuDNN autotune, compile, worker start")
    p.add_argument("--timm-workers", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    if args.export:
        return export(args.export)
    specs = scenarios(args)
    run_and_save(specs, [k for k in args.scenarios if k in specs], args, tag=(args.model,))


if __name__ == "__main__":
    main()
