"""Serve checkpoints: lazy, thread-safe, cached loads (trainer.checkpoint.read); calibrated {label: prob}."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from space.image_uploads import md_escape
from trainer.checkpoint.contract import MULTI_LABEL
from trainer.checkpoint.read import load_model, open_checkpoint
from trainer.data.images import eval_transform
from trainer.errors import UserError
from trainer.evaluation.ood import verdict
from trainer.evaluation.probabilities import calibrated_sigmoid, softmax
from trainer.evaluation.tta import TTA, with_plain_logits
from trainer.hardware import usable_cores

# ref → what was loaded. Both stay empty until the first request or page load asks (importing loads nothing).
_CHECKPOINTS: dict[str, tuple[Path, dict]] = {}
_MODELS: dict[str, Classifier] = {}
# One lock for all loads: two requests racing for the same model must not load it twice (memory, and the
# Hub download), and loads are rare enough that serialising different models costs nothing.
_LOAD_LOCK = threading.RLock()
# The app runs up to 2 image requests and a batch at once (space/ui.py), beside gradio's event loop. torch's
# default of one intra-op thread per core then oversubscribes the CPU, and OpenMP threads spinning at barriers
# for a busy core made a 48 px lite0 forward ~2.5× slower inside the server than alone (bench/bench_app.py).
SERVING_SHARE = 2  # each forward gets 1/SERVING_SHARE of the cores


def set_serving_threads() -> int:
    """Give each forward pass its share of the cores (an explicit OMP_NUM_THREADS wins); the thread count."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, usable_cores() // SERVING_SHARE))
    return torch.get_num_threads()


def checkpoint(ref: str) -> tuple[Path, dict]:
    """(local dir, checked config.json) of a checkpoint, downloaded once per process for hf-hub: refs."""
    if ref not in _CHECKPOINTS:
        with _LOAD_LOCK:
            if ref not in _CHECKPOINTS:
                _CHECKPOINTS[ref] = open_checkpoint(ref)
    return _CHECKPOINTS[ref]


@dataclass
class Classifier:
    """A loaded checkpoint: timm model in eval mode, its labels, calibration (temperature, or per-class Platt scaling
    and thresholds for a multi-label model) and input transform."""

    ref: str
    path: Path
    config: dict
    model: Any
    transform: Callable | None  # the eval transform for images (None for audio: the front end is in space/audio)

    @property
    def labels(self) -> list[str]:
        """Class names in output order."""
        return self.config["label_names"]

    @property
    def temperature(self) -> float:
        """Temperature fitted on validation data (1.0 when the checkpoint has none)."""
        return float(self.config.get("temperature") or 1.0)

    @property
    def multi_label(self) -> bool:
        """Whether the model gives one independent probability per class (config.json task, schema 6)."""
        return self.config.get("task") == MULTI_LABEL

    @property
    def thresholds(self) -> list[float]:
        """Per-class decision thresholds of a multi-label model (0.5 each when the checkpoint has none)."""
        return list(self.config.get("thresholds") or [0.5] * len(self.labels))

    def probs_of(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of (N, C) logits: softmax / temperature, or per-class Platt sigmoids."""
        if self.multi_label:
            return calibrated_sigmoid(logits, self.config.get("calibration"))
        return softmax(logits, self.temperature)

    def chosen(self, probs: dict[str, float]) -> list[str]:
        """The labels a prediction names: those at or over their threshold (multi-label, most probable first), or
        the most probable one."""
        if not self.multi_label:
            return [max(probs, key=probs.get)]
        over = [label for label, t in zip(self.labels, self.thresholds, strict=True) if probs[label] >= t]
        return sorted(over, key=lambda label: -probs[label])

    def probabilities(self, batch, tta: str = "none") -> tuple[list[dict[str, float]], np.ndarray]:
        """({label: calibrated probability} per row, raw logits of the plain view) of an already preprocessed float
        batch (N, …); tta 'flip' or 'flip-crops' averages the logits over those views for the probabilities
        (trainer.evaluation.tta, as validate.py). The logits returned stay the plain view's whatever tta: they are
        the out-of-distribution score's input, and its threshold was fitted on plain validation logits."""
        with torch.inference_mode():
            plain = self.model(batch).float()
            logits = plain if tta == "none" else with_plain_logits(
                plain, TTA(self.model, tta, with_plain=False)(batch).float(), tta)  # no view runs twice
        probs = self.probs_of(logits.numpy())
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probs], plain.numpy()

    def predict_images(self, images: list, tta: str = "none") -> tuple[list[dict[str, float]], float, np.ndarray]:
        """({label: prob} per RGB PIL image, milliseconds for preprocessing + one batched forward pass, the plain
        view's logits)."""
        start = time.perf_counter()
        batch = torch.stack([self.transform(im) for im in images])
        out, logits = self.probabilities(batch, tta)
        return out, 1000 * (time.perf_counter() - start), logits

    def known(self, logits: np.ndarray) -> dict:
        """The out-of-distribution verdict of one row of plain-view logits (the mode the threshold was fitted in,
        also when TTA gives the label): its energy score, the checkpoint's threshold
        (None for checkpoints older than schema 5) and whether the input looks like one of the known classes."""
        score, unknown = verdict(logits, self.config.get("ood"))
        threshold = (self.config.get("ood") or {}).get("threshold")
        return {"ood_score": score, "ood_threshold": threshold, "known": None if unknown is None else not unknown}


def _build(ref: str, modality: str) -> Classifier:
    """Open, check and load a checkpoint for one modality (UserError when it is the wrong kind)."""
    path, config = checkpoint(ref)
    found = config.get("modality", "image")
    if found != modality:
        flag = "--audio-model (AUDIO_MODEL_ID)" if found == "audio" else "--model (MODEL_ID)"
        raise UserError(f"{ref} is an {found} model, not an {modality} model: pass it with {flag}.")
    set_serving_threads()
    model = load_model(path)
    transform = eval_transform(config["pretrained_cfg"]) if modality == "image" else None
    return Classifier(ref=ref, path=path, config=config, model=model, transform=transform)


def load_classifier(ref: str, modality: str = "image") -> Classifier:
    """The cached Classifier for a checkpoint, loaded on first use (thread-safe)."""
    key = f"{modality}:{ref}"
    if key not in _MODELS:
        checkpoint(ref)  # outside the lock below: it takes the lock itself
        with _LOAD_LOCK:
            if key not in _MODELS:
                _MODELS[key] = _build(ref, modality)
    return _MODELS[key]


def loaded() -> list[str]:
    """Keys of the models loaded so far (tests assert that importing the app loads none)."""
    return sorted(_MODELS)


def describe(clf: Classifier) -> str:
    """One status line: architecture, classes, input size and temperature."""
    size = clf.config.get("pretrained_cfg", {}).get("input_size", ["?", "?", "?"])
    decision = "multi-label: per-class calibrated probabilities and thresholds" if clf.multi_label else \
        f"temperature {clf.temperature:.2f}"
    return (f"**{md_escape(clf.config['architecture'])}** · {len(clf.labels)} classes · input {size[-2]}×{size[-1]} · "
            f"{decision}")
