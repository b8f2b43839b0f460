"""The Audio tab's handlers: an audio checkpoint through trainer/audio/frontend.py, the front end training used."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import torch

from space import classifier
from space.handlers import (
    DEFAULT_TOP_K,
    Handlers,
    as_gr_error,
    chosen_line,
    label_view,
    ood_line,
    ood_note,
    pin_warning,
    undertrained_warning,
    user_error,
)
from space.image_uploads import guard_upload, md_escape
from trainer.audio.decode import load_waveform
from trainer.audio.frontend import LogMel, sliding_window_logits, spectrogram_image, window_starts
from trainer.checkpoint.quality import checkpoint_verdict
from trainer.config import AudioConfig
from trainer.errors import UserError

_FRONTS: dict[str, object] = {}  # checkpoint ref → its LogMel (filterbanks built once)
_FRONTS_LOCK = threading.Lock()


def audio_source(payload) -> tuple[Path, str]:
    """(file path, display name) from a gradio FileData dict or a path; UserError when there is no file."""
    if isinstance(payload, str | Path):
        return Path(payload), Path(payload).name
    if isinstance(payload, dict) and payload.get("path"):
        return Path(payload["path"]), (payload.get("orig_name") or Path(payload["path"]).name)[:80]
    raise UserError("No audio file in the request: upload a clip or record one with the microphone.")


def front_for(clf: classifier.Classifier):
    """The checkpoint's LogMel, rebuilt from its config.json `audio` block (cached per checkpoint)."""
    with _FRONTS_LOCK:
        if clf.ref not in _FRONTS:
            _FRONTS[clf.ref] = LogMel(AudioConfig.from_block(clf.config["audio"]))
        return _FRONTS[clf.ref]


def classify_wave(clf: classifier.Classifier, wave) -> tuple:
    """(mean logits, per-window logits, spectrogram image of the most confident window) for a mono wave."""
    front = front_for(clf)

    def model_fn(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return clf.model(x)

    mean, windows = sliding_window_logits(wave, front, model_fn)
    if len(windows) == 1:
        spec = front.eval_input(wave)[0]
    else:  # show the window the model was surest about (a 30-minute clip does not fit in one image)
        best = int(windows.softmax(-1).amax(-1).argmax())
        start, n = window_starts(wave.shape[-1], front.cfg)[best], front.cfg.clip_samples
        spec = front(wave[start: start + n][None])[0]
    return mean, windows, spectrogram_image(spec)


def describe_input(info, windows: int, cfg, ms: dict) -> str:
    """Markdown: what the clip was, what was converted, how it was windowed, and the latency."""
    lines = [f"**{md_escape(info.name)}** · {info.duration_s:.2f} s · {info.sample_rate} Hz · "
             f"{info.channels} channel(s) · {md_escape(info.format)}"]
    lines += [f"- {note}" for note in info.notes]
    if windows > 1:
        lines.append(f"- longer than {cfg.clip_seconds:g} s: {windows} windows of {cfg.clip_seconds:g} s every "
                     f"{cfg.window_hop:g} s, logits averaged; the spectrogram shows the most confident window")
    elif info.duration_s < cfg.clip_seconds:
        lines.append(f"- shorter than {cfg.clip_seconds:g} s: zero-padded (centred), as in training")
    lines.append(f"- decode {ms['decode']:.1f} ms · front end + model {ms['model']:.1f} ms · "
                 f"total {ms['total']:.1f} ms")
    return "\n".join(lines)


class AudioHandlers:
    """Status and prediction for the Audio tab, for the audio model of a Handlers' settings."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def _classifier(self) -> classifier.Classifier:
        """The audio classifier, loaded on first use (UserError if none is configured or it cannot run)."""
        return classifier.load_classifier(self.handlers._ref("audio"), "audio")

    def status(self) -> str:
        """On page load: the audio model's status line (or why there is none)."""
        try:
            clf = self._classifier()
        except Exception as e:  # shown in the tab; the page itself must load
            return f"⚠️ {user_error(e).message}"
        cfg = front_for(clf).cfg
        settings = self.handlers.settings
        return (f"✅ `{clf.ref}` ({settings.audio.source}): {classifier.describe(clf)} · "
                f"{cfg.clip_seconds:g} s clips at {cfg.sample_rate} Hz, {cfg.n_mels} mel bands"
                + undertrained_warning(checkpoint_verdict(clf.path))
                + (pin_warning(settings.audio) if settings.on_space else ""))

    @as_gr_error
    def predict_audio(self, audio) -> tuple[dict[str, float], object, str]:
        """A clip → ({label: calibrated probability} top k, spectrogram of what was classified, notes)."""
        if audio is None:  # the input was cleared: nothing to say, no error toast
            return {}, None, ""
        guard_upload(audio)
        start = time.perf_counter()
        clf = self._classifier()
        path, name = audio_source(audio)
        cfg = front_for(clf).cfg
        wave, info = load_waveform(path, cfg.sample_rate, name=name)
        decoded = time.perf_counter()
        mean, windows, image = classify_wave(clf, wave)
        probs = clf.probs_of(mean[None].numpy())[0]
        done = time.perf_counter()
        ms = {"decode": 1000 * (decoded - start), "model": 1000 * (done - decoded), "total": 1000 * (done - start)}
        labels = dict(zip(clf.labels, map(float, probs), strict=True))
        known = clf.known(mean.numpy())  # the mean logits over the windows, as classified
        notes = chosen_line(clf, labels) + ood_line(known) + describe_input(info, len(windows), cfg, ms) + \
            ood_note(known)
        return label_view(clf, labels, DEFAULT_TOP_K), image, notes
