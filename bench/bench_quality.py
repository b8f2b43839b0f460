"""The quality study: run one training recipe end to end and record test accuracy against wall time.

Each call runs `trainer/train.py` with the given flags in a subprocess (offline), times the whole command (train +
final evaluation, data loading included; the one-time dataset cache and weight conversion are done before the clock
starts), reads the checkpoint's eval/metrics.json and appends one run to bench/results/quality_<date>.json:

    python bench/bench_quality.py --name lite0-64px-14min -- --dataset fashion-mnist --model tf_efficientnet_lite0 \
        --pretrained-file ~/.cache/timm-space/weights/tf_efficientnet_lite0.in1k.safetensors --img-size 64 …

Fields per run: name, dataset, test_accuracy (plain, no TTA), test_accuracy_tta (when --tta), val_accuracy,
train_eval_wall_s, command, and the hardware (CPU model, cores, torch threads, versions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_recipe(name: str, flags: list[str], out_dir: Path, launcher: str | None = None) -> dict:
    """Train with `flags` into out_dir (under `launcher`, e.g. an accelerate launch line), timed; the record."""
    head = shlex.split(launcher) if launcher else [sys.executable]
    cmd = [*head, "trainer/train.py", *flags, "--output-dir", str(out_dir), "--overwrite-output-dir"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1")
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir.parent / f"{name}.log").write_text(proc.stdout + proc.stderr)  # beside the run: what it printed
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    command = shlex.join(["python" if c == sys.executable else c for c in cmd])
    return record(name, out_dir, wall, command.replace(str(REPO) + "/", ""))


def record(name: str, out_dir: Path, wall: float, command: str) -> dict:
    """The study's record of a finished run in out_dir that took `wall` seconds."""
    import torch

    metrics = json.loads((out_dir / "eval" / "metrics.json").read_text())
    test, val = metrics.get("test", {}), metrics.get("val", {})
    config = json.loads((out_dir / "train_config.json").read_text())
    return {"name": name, "dataset": config["data"]["dataset"], "model": config["model"]["model"],
            "test_accuracy": test.get("accuracy"), "test_accuracy_tta": test.get("tta", {}).get("accuracy"),
            "val_accuracy": val.get("accuracy"), "train_eval_wall_s": round(wall, 1),
            "command": command,
            "hardware": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                         "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}


def main() -> None:
    """CLI: one recipe → one record appended to bench/results/quality_<date>.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="a short name for the recipe")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "outputs" / "quality")
    parser.add_argument("--launcher", help="run trainer/train.py under this command instead of python, e.g. "
                        "'accelerate launch --multi_gpu --num_processes 2 --num_machines 1'")
    parser.add_argument("--from-run", type=Path, help="record this finished run (e.g. make demo's) instead of "
                        "training; needs --wall and --command")
    parser.add_argument("--wall", type=float, help="--from-run: the measured seconds")
    parser.add_argument("--command", help="--from-run: the command that made it")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="-- then the trainer/train.py flags")
    args = parser.parse_args()
    flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
    if args.from_run:
        entry = record(args.name, args.from_run, args.wall, args.command)
    else:
        entry = run_recipe(args.name, flags, args.runs_dir / args.name, args.launcher)
    today = date.today().isoformat()
    path = args.out / f"quality_{today}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    runs = [r for r in runs if r["name"] != args.name] + [entry]
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"date": today, "runs": runs}, indent=2) + "\n")
    print(json.dumps(entry, indent=2), f"\nappended to {path}", flush=True)


if __name__ == "__main__":
    main()
