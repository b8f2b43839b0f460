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
    probs, _, _ = clf.predict_images(images)
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


def test_old_checkpoint_in_the_metrics_tab():
    """A schema-2 checkpoint has no preflight, Grad-CAM overlays or probabilities in samples.json: the tab says so
    and shows the rest."""
    from space import eval_results
    from space.eval_results import explain_items, preflight_markdown, read_eval, served_samples, top_loss_items
    from space.handlers import Handlers
    from space.metrics import VIEW_SIZE, MetricsHandlers
    from space.settings import ModelChoice, Settings

    path = FIXTURES / "image"
    assert json.loads((path / "manifest.json").read_text())["schema_version"] == 2
    ev = read_eval(path)
    assert "preflight" not in ev and "No data preflight in this checkpoint" in preflight_markdown(None)
    root, samples = served_samples(path), ev.get("samples", {})  # the fixture keeps no thumbnails
    assert explain_items(root, samples) == [] and top_loss_items(root, samples) == []
    old_entry = {"file": "x.png", "label": "a", "pred": "b", "loss": 1.5}
    assert "(loss 1.50)" in eval_results._caption(old_entry)  # no probabilities before schema 3
    view = MetricsHandlers(Handlers(Settings(image=ModelChoice(str(path), "test")))).metrics_view("image")
    assert len(view) == VIEW_SIZE and view[0].startswith("✅")
    assert "No data preflight" in view[13] and len(view[4].data) == len(ev["confusion_matrix"]["labels"])


def old_spoken_digits_test_split(root: Path) -> Path:
    """The test split the audio fixture was scored on: spoken-digits as it was at d207acf (en-us only, a 3 × 3 grid
    of speed and pitch per voice), restricted to the 5 test voices; the held-out voice's 90 clips in their old order."""
    import datasets

    from tests.helpers.cli import AUDIO_VOICES
    from trainer.data.builtin.spoken_digits import DIGITS, speak, split_by_voice

    voice = next(v for v, split in split_by_voice(AUDIO_VOICES.split(",")).items() if split == "test")
    rows = [(d, s, p) for d in range(len(DIGITS)) for s in (130, 165, 200) for p in (30, 50, 70)]
    features = datasets.Features({"audio": datasets.Audio(), "label": datasets.ClassLabel(names=DIGITS)})
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": speak(DIGITS[d], voice, s, p), "path": f"{d}.wav"}
                                               for d, s, p in rows],
                                     "label": [d for d, _, _ in rows]}, features=features)
    datasets.DatasetDict({"test": ds}).save_to_disk(str(root))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image", "audio"])
def test_old_checkpoint_in_validate(kind, tmp_path):
    import pyarrow.parquet as pq

    dataset = "fashion-mnist" if kind == "image" else str(old_spoken_digits_test_split(tmp_path / "old-digits"))
    run_cli("trainer/validate.py", "--checkpoint", str(FIXTURES / kind), "--dataset", dataset,
            "--max-eval-samples", "12", "--output-dir", str(tmp_path / "eval"))
    got = pq.read_table(tmp_path / "eval" / "predictions.parquet").to_pydict()
    want = EXPECTED["validate"][kind]
    assert got["index"] == want["index"] and got["label"] == want["label"]
    np.testing.assert_allclose(np.array(got["logits"]), np.array(want["logits"]), atol=ATOL, rtol=0)
    metrics = json.loads(Path(tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(np.mean(np.argmax(want["logits"], 1) == np.array(want["label"])))
