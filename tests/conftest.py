"""Shared test helpers: run the real CLIs in subprocesses, build tiny datasets, hash output dirs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["--dataset", "fashion-mnist", "--model", "test_resnet", "--no-pretrained", "--max-steps", "4",
         "--max-train-samples", "256", "--max-eval-samples", "128", "--img-size", "32"]


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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One real 4-step CLI run on Fashion-MNIST, shared by the checkpoint-contract tests."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    run_cli("trainer/train.py", *SMOKE, "--output-dir", str(out))
    return out


# Audio: a 5-voice spoken-digits subset (450 clips, ~5 s to synthesize) in a session cache, not the full 101 voices.
AUDIO_VOICES = "adam,croak,f3,klatt,m3"
AUDIO_SMOKE = ["--dataset", "spoken-digits", "--model", "test_resnet", "--no-pretrained", "--max-steps", "4",
               "--max-train-samples", "128", "--max-eval-samples", "64"]


@pytest.fixture(scope="session")
def audio_env(tmp_path_factory) -> dict:
    """Environment for CLIs that use the small spoken-digits subset (its own TIMM_SPACE_CACHE)."""
    return {"TIMM_SPACE_CACHE": str(tmp_path_factory.mktemp("audio_cache")),
            "TIMM_SPACE_SPOKEN_DIGITS_VOICES": AUDIO_VOICES}


@pytest.fixture(scope="session")
def audio_run(tmp_path_factory, audio_env) -> Path:
    """The audio smoke run (4 steps on the spoken-digits subset), shared by the audio and app tests."""
    out = tmp_path_factory.mktemp("audio_smoke") / "run"
    run_cli("trainer/train.py", *AUDIO_SMOKE, "--output-dir", str(out), env=audio_env)
    return out
