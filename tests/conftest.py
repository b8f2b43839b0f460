"""Session fixtures shared by the test files: one real smoke run per modality (helpers live in tests/helpers/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import AUDIO_ACCENTS, AUDIO_SMOKE, AUDIO_VOICES, SMOKE, run_cli, timed_budget


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One real 4-step CLI run on Fashion-MNIST, shared by the checkpoint-contract tests."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    run_cli("trainer/train.py", *SMOKE, "--output-dir", str(out))
    return out


@pytest.fixture(scope="session")
def audio_env(tmp_path_factory) -> dict:
    """Environment for CLIs that use the small spoken-digits subset (its own TIMM_SPACE_CACHE)."""
    return {"TIMM_SPACE_CACHE": str(tmp_path_factory.mktemp("audio_cache")),
            "TIMM_SPACE_SPOKEN_DIGITS_VOICES": AUDIO_VOICES, "TIMM_SPACE_SPOKEN_DIGITS_ACCENTS": AUDIO_ACCENTS}


@pytest.fixture(scope="session")
def audio_run(tmp_path_factory, audio_env) -> Path:
    """The audio smoke run (4 steps on the spoken-digits subset), shared by the audio and app tests."""
    out = tmp_path_factory.mktemp("audio_smoke") / "run"
    run_cli("trainer/train.py", *AUDIO_SMOKE, "--output-dir", str(out), env=audio_env)
    return out


@pytest.fixture(scope="session")
def budget_run(tmp_path_factory) -> dict:
    """One real --time-budget run of a tiny model on 2,048 Fashion-MNIST images (0.5 minute; 1 minute under make
    test-timing-slow), with the wall time it took: the time-budget test's subject, and the suite's normally trained
    checkpoint (~0.85 test accuracy)."""
    import time

    out = tmp_path_factory.mktemp("budget") / "run"
    minutes = timed_budget(0.5)
    flags = [a for a in SMOKE if a not in ("--max-steps", "4", "--max-train-samples", "256")]
    started = time.time()
    proc = run_cli("trainer/train.py", *flags, "--max-train-samples", "2048", "--time-budget", str(minutes),
                   "--log-interval", "1000", "--output-dir", str(out))
    return {"out": out, "proc": proc, "wall": time.time() - started, "minutes": minutes}
