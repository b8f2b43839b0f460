"""Session fixtures shared by the test files: one real smoke run per modality (helpers live in tests/helpers/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import AUDIO_ACCENTS, AUDIO_SMOKE, AUDIO_VOICES, SMOKE, run_cli


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
