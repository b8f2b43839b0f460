"""Checkpoints written by older code (tests/fixtures/checkpoints, schema 2) load in the app and in validate.py and
give the logits that code gave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import REPO, run_cli

FIXTURES = REPO / "tests" / "fixtures" / "checkpoints"
EXPECTED = json.loads((FIXTURES / "expected_logits.json").read_text())
ATOL = 1e-5  # same weights, same maths; only the summation order of a different thread count may differ


def test_old_image_checkpoint_in_the_app():
    import torch
    from PIL import Image

    from space import classifier

    clf = classifier.load_classifier(str(FIXTURES / "image"), "image")
    images = [Image.open(FIXTURES / "inputs" / f"image_{i}.png").convert("RGB") for i in range(3)]
    with torch.inference_mode():
        logits = clf.model(torch.stack([clf.transform(im) for im in images])).float().numpy()
    np.testing.assert_allclose(logits, EXPECTED["app"]["image"], atol=ATOL, rtol=0)
    probs, _ = clf.predict_images(images)
    assert [max(p, key=p.get) for p in probs] == [clf.labels[i] for i in logits.argmax(1)]


def test_old_audio_checkpoint_in_the_app():
    from space import classifier
    from space.audio import classify_wave
    from trainer.audio.decode import load_waveform

    clf = classifier.load_classifier(str(FIXTURES / "audio"), "audio")
    for i, expected in enumerate(EXPECTED["app"]["audio"]):
        wave, info = load_waveform(str(FIXTURES / "inputs" / f"audio_{i}.wav"), clf.config["audio"]["sample_rate"])
        assert info.sample_rate == 8000  # the resampling path is part of what must not change
        mean, _, _ = classify_wave(clf, wave)
        np.testing.assert_allclose(mean.numpy(), expected, atol=ATOL, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind, dataset", [("image", "fashion-mnist"), ("audio", "spoken-digits")])
def test_old_checkpoint_in_validate(kind, dataset, tmp_path, audio_env):
    import pyarrow.parquet as pq

    run_cli("trainer/validate.py", "--checkpoint", str(FIXTURES / kind), "--dataset", dataset,
            "--max-eval-samples", "12", "--output-dir", str(tmp_path), env=audio_env)
    got = pq.read_table(tmp_path / "predictions.parquet").to_pydict()
    want = EXPECTED["validate"][kind]
    assert got["index"] == want["index"] and got["label"] == want["label"]
    np.testing.assert_allclose(np.array(got["logits"]), np.array(want["logits"]), atol=ATOL, rtol=0)
    metrics = json.loads(Path(tmp_path / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(np.mean(np.argmax(want["logits"], 1) == np.array(want["label"])))
