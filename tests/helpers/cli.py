"""Run the real CLIs in subprocesses (offline, quiet), the shared smoke-run flags, and output-dir hashing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = ["--dataset", "fashion-mnist", "--model", "test_resnet", "--no-pretrained", "--max-steps", "4",
         "--max-train-samples", "256", "--max-eval-samples", "128", "--img-size", "32",
         "--latency-budget-ms", "100000", "--tta", "flip"]
# Audio: a spoken-digits subset in a session cache (4 accents × 5 voices, 260 clips, ~3 s to synthesize), not the
# full 7 × 101: two training accents, the validation accent and one held-out test accent.
AUDIO_VOICES = "adam,croak,f3,klatt,m3"
AUDIO_ACCENTS = "en-us,en-gb,en-029,en-gb-x-rp"
AUDIO_SMOKE = ["--dataset", "spoken-digits", "--model", "test_resnet", "--no-pretrained", "--max-steps", "4",
               "--max-train-samples", "128", "--max-eval-samples", "64", "--group-column", "group"]


SLOWED = "TIMM_SPACE_SLOWED"  # set by `make test-timing-slow`: one core shared with a CPU-bound sibling


def timed_budget(minutes: float) -> float:
    """A timing test's --time-budget: `minutes`, or twice that on the slowed machine of make test-timing-slow (where
    the fixed costs of start-up alone are a third of a half-minute budget)."""
    return 2 * minutes if os.environ.get(SLOWED) else minutes


def cli_env(**extra: str) -> dict:
    """The environment for CLI subprocesses: offline Hub (no retries), quiet progress bars."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1",
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.update(extra)
    return env


def run_cli(*args: str, timeout: int = 600, check: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python <args>` from the repo root (extra environment in env); on unexpected failure show its output."""
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          env=cli_env(**(env or {})), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}")
    return proc


def tree_hash(path: Path) -> str:
    """sha256 over every file's relative path and bytes ('absent' for no dir)."""
    if not path.exists():
        return "absent"
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()
