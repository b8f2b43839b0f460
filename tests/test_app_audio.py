"""The Audio tab end to end: the app serving a tiny spoken-digits checkpoint, called through gradio_client."""

from __future__ import annotations

import json

import pytest

from tests.helpers.app import launch
from tests.helpers.audio import CONVERTED, long_wav, write_converted, write_refused
from tests.test_app import _probs, _upload

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def audio_app(audio_run):
    """gradio_client.Client of the app serving only the session's 4-step spoken-digits checkpoint."""
    from space.settings import ModelChoice, Settings

    demo, client = launch(Settings(audio=ModelChoice(str(audio_run), "test fixture")))
    yield client
    demo.close()


def _spoken(tmp_path, word: str = "seven"):
    """A real utterance from the same synthesizer (a voice and speed outside the dataset's grid)."""
    from trainer.data.builtin.spoken_digits import speak

    path = tmp_path / f"{word}.wav"
    path.write_bytes(speak(word, "m3", 150, 60))
    return path


def test_audio_prediction_gives_calibrated_probabilities_and_a_spectrogram(audio_app, audio_run, tmp_path):
    from PIL import Image

    assert "✅" in audio_app.predict(api_name="/audio_model")
    label, spectrogram, info = audio_app.predict(_upload(_spoken(tmp_path)), api_name="/predict_audio")
    probs = _probs(label)
    assert set(probs) <= set(DIGITS) and len(probs) == 5 and label["label"] == max(probs, key=probs.get)
    assert 0 < sum(probs.values()) <= 1 + 1e-6
    image = Image.open(spectrogram)
    block = json.loads((audio_run / "config.json").read_text())["audio"]
    assert image.height % block["n_mels"] == 0 and image.width % (block["clip_seconds"] * 16000 // 160 + 1) == 0
    assert "22050 Hz" in info and "resampled 22050 Hz → 16000 Hz" in info and "total" in info
    assert audio_app.predict(None, api_name="/predict_audio")[2] == ""  # a cleared input is not an error


def test_bad_audio_gets_a_clear_message_and_the_app_keeps_serving(audio_app, tmp_path):
    from gradio_client.exceptions import AppError

    cases = write_refused(tmp_path)
    assert len(cases) >= 10
    for path, message in cases.items():
        with pytest.raises(AppError) as err:
            audio_app.predict(_upload(path), api_name="/predict_audio")
        assert message in str(err.value), (path.name, str(err.value))
    label, _, _ = audio_app.predict(_upload(_spoken(tmp_path, "three")), api_name="/predict_audio")
    assert label["label"] in DIGITS


def test_odd_formats_rates_and_layouts_are_converted_and_say_how(audio_app, tmp_path):
    seen = set()
    for path, note in write_converted(tmp_path).items():
        label, _, info = audio_app.predict(_upload(path), api_name="/predict_audio")
        assert label["label"] in DIGITS and note in info, (path.name, info)
        seen.add(path.name)
    assert seen == set(CONVERTED)


def test_thirty_minute_clip_is_classified_with_sliding_windows(audio_app, tmp_path):
    path = long_wav(tmp_path / "half_hour.wav", 30)  # 8 kHz 8-bit: 14 MB to upload
    label, _, info = audio_app.predict(_upload(path), api_name="/predict_audio")
    assert label["label"] in DIGITS
    assert "1800.00 s" in info and "3599 windows of 1 s every 0.5 s" in info


def test_metrics_tab_shows_the_audio_checkpoint(audio_app, audio_run):
    expected = json.loads((audio_run / "eval" / "metrics.json").read_text())
    assert audio_app.predict("audio", api_name="/metrics")["test"]["accuracy"] == expected["test"]["accuracy"]
    _status, frame, *_rest = audio_app.predict("audio", api_name="/metrics_view")
    summary = dict(frame["data"])
    assert summary["architecture"] == "test_resnet (audio)"
    groups = json.loads((audio_run / "eval" / "groups.json").read_text())["test"]
    assert f"en-gb-x-rp {groups['en-gb-x-rp']['accuracy']:.4f} (" in summary["test per group"]  # --group-column


@pytest.mark.timing
def test_a_tiny_wav_at_44101_hz_through_the_app_costs_little(audio_app, tmp_path):
    """The reproduction: a 1.6 KB WAV whose header says 44,101 Hz once made the resampler build multi-GB kernels
    and killed the server. Now: an answer or a clear refusal within 10 s and < 512 MiB extra peak RSS, and the
    next good clip still works."""
    import time

    import numpy as np
    import soundfile as sf
    from gradio_client.exceptions import AppError

    from tests.helpers.memory import kib, reset_peak

    path = tmp_path / "odd_rate.wav"
    sf.write(path, (np.sin(np.arange(780) / 7) * 8000).astype(np.int16), 44101, subtype="PCM_16")
    assert 1500 < path.stat().st_size < 1700
    base, start = reset_peak(), time.perf_counter()
    try:
        label, _, info = audio_app.predict(_upload(path), api_name="/predict_audio")
        answer = f"{label['label']}: {info}"
    except AppError as e:
        answer = str(e)
    elapsed, extra_mib = time.perf_counter() - start, (kib("VmHWM") - base) / 1024
    assert elapsed < 10 and extra_mib < 512, (elapsed, extra_mib, answer)
    assert "44101 Hz" in answer or "too short" in answer, answer
    label, _, _ = audio_app.predict(_upload(_spoken(tmp_path, "four")), api_name="/predict_audio")
    assert label["label"] in DIGITS
