"""eval/samples/: thumbnails for error analysis — top-loss samples (with Grad-CAM of what the model looked at),
samples of every confusion-matrix cell, and one example per class — indexed by eval/samples.json."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from trainer.data.images import to_rgb
from trainer.evaluation.probabilities import softmax

log = logging.getLogger(__name__)
THUMB_MAX = 96  # px, longest side of an error-analysis thumbnail
EXAMPLE_MAX = 224  # px, longest side of a per-class example image
EXPLAIN_MIN = 160  # px, shortest side of a Grad-CAM overlay (small inputs are enlarged to be readable)
TOP_LOSS_N, PER_CELL_N, MAX_SAMPLE_FILES = 24, 4, 280


def _save_image(image, path: Path, max_side: int) -> None:
    """A PNG no larger than max_side on its longest side."""
    image = to_rgb(image)
    image.thumbnail((max_side, max_side))
    image.save(path, format="PNG")


def write_samples(root: Path, ds, input_column: str, pred: dict, label_names: list[str],
                  temperature: float = 1.0) -> dict:
    """Thumbnails of top-loss samples, of each (true, pred) cell — confused cells first, then the least confident
    correct ones — and one example per class; each entry carries its calibrated probabilities."""
    root.mkdir(parents=True, exist_ok=True)
    labels, preds, loss = pred["labels"], pred["logits"].argmax(1), pred["loss"]
    probs = softmax(pred["logits"], temperature)
    index: dict = {"top_loss": [], "cells": {}, "examples": []}
    used = 0

    def save(row: int, kind: str, max_side: int) -> dict:
        nonlocal used
        name = f"{kind}_{int(pred['index'][row])}.png"
        if not (root / name).exists():
            _save_image(ds[int(pred["index"][row])][input_column], root / name, max_side)
            used += 1
        return {"file": f"samples/{name}", "index": int(pred["index"][row]), "label": label_names[labels[row]],
                "pred": label_names[preds[row]], "loss": float(loss[row]),
                "prob": float(probs[row, preds[row]]), "prob_true": float(probs[row, labels[row]])}

    by_loss = np.argsort(-loss, kind="stable")
    for row in by_loss[:TOP_LOSS_N]:
        index["top_loss"].append(save(row, "sample", THUMB_MAX))
    for confused in (True, False):  # every confused cell before any diagonal one: the file cap favours errors
        for row in by_loss:
            t, p = int(labels[row]), int(preds[row])
            if (t != p) == confused and used < MAX_SAMPLE_FILES:
                cell = index["cells"].setdefault(f"{t},{p}", [])
                if len(cell) < PER_CELL_N:
                    cell.append(save(row, "sample", THUMB_MAX))
    for c in range(len(label_names)):
        rows = np.flatnonzero((labels == c) & (preds == c))
        if len(rows):
            index["examples"].append(save(rows[np.argmin(loss[rows])], "example", EXAMPLE_MAX))
    return index


def write_multilabel_samples(root: Path, ds, input_column: str, pred: dict, label_names: list[str]) -> dict:
    """Multi-label thumbnails: the top-loss samples ('true classes → chosen classes', the class most wrongly scored
    as the Grad-CAM target) and, per class, its lowest-loss sample where the class was found. No cells: a
    multi-label sample does not fall into one (true, predicted) cell."""
    root.mkdir(parents=True, exist_ok=True)
    targets, chosen, probs, loss = pred["labels"], pred["pred"], pred["probs"], pred["loss"]
    names = np.asarray(label_names, dtype=object)

    def save(row: int, kind: str, max_side: int, label: str | None = None) -> dict:
        name = f"{kind}_{int(pred['index'][row])}.png"
        if not (root / name).exists():
            _save_image(ds[int(pred["index"][row])][input_column], root / name, max_side)
        target = int(np.argmax(np.abs(probs[row] - targets[row])))  # the class the model got most wrong
        return {"file": f"samples/{name}", "index": int(pred["index"][row]),
                "label": label or ", ".join(names[targets[row] > 0]) or "(none)",
                "pred": ", ".join(names[chosen[row] > 0]) or "(none)", "loss": float(loss[row]),
                "target": target, "target_label": label_names[target], "target_prob": float(probs[row, target])}

    worst = np.argsort(-loss, kind="stable")[:TOP_LOSS_N]
    index: dict = {"top_loss": [save(row, "sample", THUMB_MAX) for row in worst], "cells": {}, "examples": []}
    for c, label in enumerate(label_names):
        rows = np.flatnonzero((targets[:, c] > 0) & (chosen[:, c] > 0))
        if len(rows):
            index["examples"].append({**save(rows[np.argmin(loss[rows])], "example", EXAMPLE_MAX), "label": label,
                                      "target": c, "target_label": label})
    return index


def write_explanations(root: Path, model, data_cfg: dict, ds, input_column: str, entries: list[dict],
                       label_names: list[str]) -> str | None:
    """Grad-CAM overlays (for the predicted class) of the top-loss image samples: adds 'explain' to each entry.

    Returns None, or why there are none (the architecture is not supported, or the model failed): a checkpoint
    is still written without them.
    """
    from trainer.data.images import eval_transform
    from trainer.evaluation.explain import gradcam, overlay, shown_input

    transform = eval_transform(data_cfg)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for e in entries:
            x = transform(to_rgb(ds[e["index"]][input_column]))[None].to(device)
            target = e["target"] if "target" in e else label_names.index(e["pred"])  # multi-label entries name it
            cam, _cls, _logits = gradcam(model, x, target)
            name = f"explain_{e['index']}.png"
            overlay(shown_input(x, data_cfg["mean"], data_cfg["std"]), cam, EXPLAIN_MIN).save(root / name)
            e["explain"] = f"samples/{name}"
    except Exception as err:  # noqa: BLE001 - explanations are an extra: the checkpoint must still be written
        log.warning("no Grad-CAM overlays in eval/samples: %s", err)
        for e in entries:
            e.pop("explain", None)
        return f"{type(err).__name__}: {err}"
    finally:
        model.train(was_training)
    return None
