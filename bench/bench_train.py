"""Benchmark: training throughput of our trainer, side by side, as ratios measured in one run.

  a  ours vs timm's own train.py     same folder of Fashion-MNIST PNGs, model, size, batch, optimizer, flags
  b  real vs synthetic               embedded Fashion-MNIST through our pipeline vs one fixed on-device batch
  c  1 vs 2 processes                `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU)
  d  fast path vs fp32 NCHW eager    our defaults vs --no-channels-last --mixed-precision no (no --compile)

One instrument for every run: the wall-clock arrival of each program's own step log lines (PYTHONUNBUFFERED),
so img/s = images between two logged steps / seconds between the lines; the first --warmup-steps are skipped
and start-up (dataset scan, decode cache, worker spawn) and evaluation fall outside the window. Each pair runs
--repeats times, alternating which side goes first; ratios are of the medians. timm's train.py is a fetched
snapshot passed as --timm-train (never copied here). Writes bench/results/train_<device>_<date>.json.

    python bench/bench_train.py --timm-train /tmp/timm_train.py [--scenarios a b c d] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
WORK = RESULTS / "tmp" / "bench_train"
OURS_STEP = re.compile(r"\bstep (\d+) loss \S+ lr")
TIMM_STEP = re.compile(r"Train: \d+ \[\s*(\d+)/")


def common_flags(args) -> list[str]:
    """The flags both trainers get (ours spelled ours; timm_flags maps them)."""
    return ["--model", args.model, "--no-pretrained", "--img-size", str(args.img_size), "--crop-pct", "1.0",
            "--batch-size", str(args.batch_size), "--epochs", "1", "--opt", "adamw", "--lr", "1e-3",
            "--weight-decay", "0.05", "--smoothing", "0.1", "--scale", "0.8", "1", "--hflip", "0.5",
            "--log-interval", str(args.log_interval), "--max-eval-samples", "256", "--eval-batch-size", "256"]


def timm_flags(args, folder: Path, out: Path, scale: str = "0.8", extra: tuple = ()) -> list[str]:
    """timm train.py with the same model, data, size, batch, optimizer, augmentation and channels_last (+ extra)."""
    return ["--data-dir", str(folder), "--train-split", "train", "--val-split", "validation",
            "--model", args.model, "--num-classes", "10", "--img-size", str(args.img_size), "--crop-pct", "1.0",
            "-b", str(args.batch_size), "-vb", "256", "--epochs", "1", "--opt", "adamw", "--lr", "1e-3",
            "--weight-decay", "0.05", "--smoothing", "0.1", "--scale", scale, "1", "--hflip", "0.5",
            "--color-jitter", "0", "--train-interpolation", "bilinear", "--channels-last", "--device", "cpu"
            if not torch.cuda.is_available() else "cuda", "--workers", str(args.timm_workers),
            "--log-interval", str(args.log_interval), "--output", str(out), "--experiment", "timm", *extra]


def export_folder(n_train: int, n_val: int) -> Path:
    """Fashion-MNIST as an imagefolder of PNGs (train/ and validation/): data both trainers can read."""
    from trainer.data.builtin import load_embedded

    folder = WORK / f"fmnist_{n_train}_{n_val}"
    if (folder / ".done").exists():
        return folder
    dd = load_embedded("fashion-mnist")
    names = dd["train"].features["label"].names
    for split, ds in (("train", dd["train"].select(range(n_train))), ("validation", dd["test"].select(range(n_val)))):
        for i, row in enumerate(ds):
            d = folder / split / names[row["label"]].replace("/", "-")
            d.mkdir(parents=True, exist_ok=True)
            row["image"].save(d / f"{i:05d}.png")
    (folder / ".done").touch()
    return folder


def timed_run(cmd: list[str], pattern: re.Pattern, images_per_step: int, warmup: int, env: dict) -> dict:
    """Run `cmd`, stamp each step log line on arrival; img/s between the first step >= warmup and the last."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marks, tail = [], []
    for line in proc.stdout:
        m = pattern.search(line)
        if m:
            marks.append((int(m.group(1)), time.perf_counter()))
        tail = (tail + [line])[-30:]
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{''.join(tail)}")
    window = [(s, t) for s, t in marks if s >= warmup]
    if len(window) < 2:
        raise RuntimeError(f"fewer than 2 logged steps after {warmup} in {' '.join(cmd)}")
    (s0, t0), (s1, t1) = window[0], window[-1]
    return {"img_per_s": (s1 - s0) * images_per_step / (t1 - t0), "steps_timed": s1 - s0,
            "wall_s": time.perf_counter() - start}


def run_env(threads: int | None = None) -> dict:
    """Unbuffered output (the instrument), offline, and an optional thread count."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def launch2() -> list[str]:
    """`accelerate launch` prefix for 2 processes (CPU: MULTI_CPU on gloo)."""
    return ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--dynamo_backend", "no", "--main_process_port", "29517"]


def scenarios(args, folder: Path) -> dict:
    """{key: (title, target ratio or None, side A, side B)}; a side is (name, argv, step regex, img/step, env)."""
    py, bs, ours = sys.executable, args.batch_size, "trainer/train.py"
    base = common_flags(args)
    real = ["--dataset", "fashion-mnist", "--max-train-samples", str(args.train_samples)]
    out = lambda name: ["--output-dir", str(WORK / "out" / name), "--overwrite-output-dir"]  # noqa: E731
    return {
        "a": ("ours vs timm train.py (same PNG folder, flags)", 0.95,
              ("ours", [py, ours, "--dataset", str(folder), *base, *out("a_ours")], OURS_STEP, bs, run_env()),
              ("timm", [py, args.timm_train, *timm_flags(args, folder, WORK / "out" / "a_timm")], TIMM_STEP, bs,
               run_env())),
        "b": ("real embedded data vs synthetic tensors (ours)", 0.9,
              ("real", [py, ours, *real, *base, *out("b_real")], OURS_STEP, bs, run_env()),
              ("synthetic", [py, "bench/synthetic_train.py", *real, *base, *out("b_syn")], OURS_STEP, bs,
               run_env())),
        "c": ("2 processes vs 1 (ours, batch per process)", None,
              ("2 processes", [py, *launch2(), ours, *real, *base, *out("c_two")], OURS_STEP, 2 * bs, run_env()),
              ("1 process", [py, ours, *real, *base, *out("c_one")], OURS_STEP, bs, run_env())),
        "d": ("fast path vs fp32 NCHW eager (ours)", None,
              ("fast path", [py, ours, *real, *base, *args.fast_flags, *out("d_fast")], OURS_STEP, bs, run_env()),
              ("fp32 NCHW eager", [py, ours, *real, *base, "--no-channels-last", "--mixed-precision", "no",
                                   *out("d_eager")], OURS_STEP, bs, run_env())),
    }


def measure(spec: tuple, repeats: int, warmup: int) -> dict:
    """Alternate the two sides `repeats` times (A B, B A, …); medians and their ratio A/B."""
    title, target, *sides = spec
    runs: dict = {side[0]: [] for side in sides}
    for r in range(repeats):
        for name, cmd, pattern, per_step, env in (sides if r % 2 == 0 else sides[::-1]):
            res = timed_run(cmd, pattern, per_step, warmup, env)
            runs[name].append(res)
            print(f"  {name:>16}: {res['img_per_s']:8.1f} img/s ({res['steps_timed']} steps, "
                  f"{res['wall_s']:.0f} s wall)", flush=True)
    (a, b) = (statistics.median(r["img_per_s"] for r in runs[s[0]]) for s in sides)
    ratio = a / b
    result = {"title": title, "median_img_per_s": {sides[0][0]: round(a, 1), sides[1][0]: round(b, 1)},
              "ratio": round(ratio, 3), "target": target, "runs": runs,
              "commands": {s[0]: " ".join(str(c) for c in s[1]) for s in sides}}
    if target is not None:
        result["meets_target"] = ratio >= target
    print(f"{title}: ×{ratio:.3f}" + (f" (target ≥ {target})" if target else ""), flush=True)
    return result


def machine() -> dict:
    """Where and with what the numbers were taken."""
    import accelerate
    import timm

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "timm": timm.__version__, "accelerate": accelerate.__version__,
            "platform": platform.platform(), "git_sha": sha.stdout.strip(), "date": date.today().isoformat()}


def main() -> None:
    """Parse flags, export the shared folder, run the chosen scenarios, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timm-train", help="path to timm's train.py (a fetched snapshot); needed for scenario a")
    p.add_argument("--scenarios", nargs="+", default=["a", "b", "c", "d"], choices=["a", "b", "c", "d"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="tf_efficientnet_lite0")
    p.add_argument("--img-size", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-samples", type=int, default=9600, help="training images per run (one epoch)")
    p.add_argument("--log-interval", type=int, default=25)
    p.add_argument("--warmup-steps", type=int, default=25)
    p.add_argument("--timm-workers", type=int, default=2, help="timm's --workers (PIL decode + augment)")
    p.add_argument("--fast-flags", nargs="*", default=[], help="extra flags for the fast side of d, e.g. --compile")
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    if "a" in args.scenarios and not args.timm_train:
        p.error("scenario a needs --timm-train PATH (timm's train.py from a fetched snapshot)")
    folder = export_folder(args.train_samples, 512)
    specs = scenarios(args, folder)
    run_and_save(specs, args.scenarios, args)


def run_and_save(specs: dict, keys: list[str], args, tag: tuple = ()) -> Path:
    """Measure the scenarios `keys` and write them with machine info and settings to --output, else
    bench/results/train_<device>[_<tag>]_<date>.json (atomically); return the path."""
    results = {"machine": machine(), "settings": {k: v for k, v in vars(args).items() if k != "output"}}
    for key in keys:
        print(f"[{key}] {specs[key][0]}", flush=True)
        results[key] = measure(specs[key], args.repeats, args.warmup_steps)
    device = "gpu" if torch.cuda.is_available() else "cpu"
    out = args.output or RESULTS / ("_".join(["train", device, *tag, date.today().isoformat()]) + ".json")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
