"""Writing a bench result: bench/results/<stem>_<date>.json, printed too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def save_result(result: dict, out: Path, stem: str) -> Path:
    """Write result (which carries its "date") as out/<stem>_<date>.json and print it; return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}_{result['date']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2), f"\nwritten to {path}", flush=True)
    return path


def train_new_folder(data: Path, run: Path, prefix: list[str] | None = None) -> tuple:
    """(stdout, wall seconds) of `python trainer/train.py --dataset data --output-dir run` with no other flag, as a
    new user runs it: without HF_HUB_OFFLINE (on a machine without the Hub the trainer must notice at once);
    `prefix` runs it under another command (e.g. taskset). Stops with the output on failure."""
    cmd = [*(prefix or []), sys.executable, "trainer/train.py", "--dataset", str(data), "--output-dir", str(run),
           "--overwrite-output-dir"]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["TQDM_DISABLE"] = "1"
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout, wall
