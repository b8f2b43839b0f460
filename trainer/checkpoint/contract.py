"""The checkpoint contract, defined once: schema version, file names, and what is served, pushed or kept local.

A checkpoint dir is timm's HF format (config.json + model.safetensors, loadable with plain
`timm.create_model("local-dir:DIR", pretrained=True)`) plus our keys in config.json and the files below.
docs/checkpoint-format.md describes each file.
"""

from __future__ import annotations

from trainer.config import MULTI_LABEL, SINGLE_LABEL  # noqa: F401 - config.json `task` values, re-exported for readers

# 8: resolved_config.json (the run as trained, re-runnable with --config) beside train_config.json, which now holds
#    the request (the options as asked, `explicit` the ones given); manifest.json `chosen` ({flag: {requested,
#    value}}) and `config` the resolved run; manifest.json `git_dirty` and `dataset.version` (the Hub commit sha or
#    the embedded build);
# 7: manifest.json `time_budget` holds the per-phase table (`phases`: planned and measured seconds), `first_plan_at_s`,
#    `stopped_before_plan`, `cores` and the planner's `choices`; `hardware.usable_cores`; eval/history.json may
#    start with an epoch-0 row of the --linear-probe head; the card marks an undertrained model (checkpoint/quality.py);
# 6: config.json `task` ("single_label" | "multi_label"; absent = single-label); a multi-label one holds per-class
#    `thresholds` and `calibration` (Platt scale + bias) instead of `temperature`, eval/multilabel_confusion.json
#    (per-class TP/FP/FN/TN) instead of confusion_matrix.json, and multi-hot labels in predictions.parquet;
# 5: config.json may hold an `ood` block (energy-score threshold fitted on validation, trainer.evaluation.ood),
#    metrics.json `ood_flagged` per split; manifest.json `time_budget` (--time-budget: planned vs actual);
# 4: model.onnx + eval/export.json (trainer/export.py, which then rewrites manifest.json), lr_find/ (--lr-find,
#    --lr auto), state/step_N (--checkpointing-steps; local only);
# 3: eval/preflight.json (the data preflight), Grad-CAM overlays of the top-loss samples (samples.json `explain`),
#    calibrated probabilities and diagonal cells in samples.json, latency p95 + hardware and `tta` in metrics.json;
# 2: config.json may hold modality "audio" with an `audio` block (the log-mel front end); 1: images only.
# Bump it when the contract changes, and keep older checkpoints loading (tests/fixtures/checkpoints).
SCHEMA_VERSION = 8

CONFIG = "config.json"  # timm's config + label_names, modality, audio block, task, temperature or thresholds, ood
WEIGHTS = "model.safetensors"  # never a pickle
CARD = "README.md"  # the model card
TRAIN_CONFIG = "train_config.json"  # the request: the TrainConfig as asked + which options were given (no secrets)
RESOLVED_CONFIG = "resolved_config.json"  # the TrainConfig as trained: the trainer's choices applied, all fixed
MANIFEST = "manifest.json"  # provenance; written last, so its presence marks a finished checkpoint
EVAL_DIR = "eval"  # metrics, per class, confusion matrix, predictions, samples
FOLDS_DIR = "folds"  # folds/<k>/ per-fold checkpoints and folds/summary.json of a --folds run
# trainer/export.py: the model as ONNX (weights inside) + its report eval/export.json. Optional and not hashed in
# manifest.json; pushed when present (the pusher uploads every file but LOCAL_ONLY) and never downloaded by the app.
ONNX = "model.onnx"

MODEL_FILES = (CONFIG, WEIGHTS)  # what timm needs to load the model
# What a --folds run copies from the best fold into the output dir (the card is then rendered for it).
SERVED_FILES = (CONFIG, WEIGHTS, TRAIN_CONFIG, RESOLVED_CONFIG, EVAL_DIR, MANIFEST)
# What the app downloads from a pushed checkpoint (huggingface_hub allow_patterns): the model alone, or with eval/.
# Allow lists: ONNX stays out of both, so the app never downloads model.onnx (it serves the safetensors weights).
MODEL_PATTERNS = list(MODEL_FILES)
SERVED_PATTERNS = [CONFIG, WEIGHTS, CARD, MANIFEST, TRAIN_CONFIG, RESOLVED_CONFIG, f"{EVAL_DIR}/*"]

STATE_DIR = "state"  # Accelerate save_state folders for --resume
STAGING_DIR = ".staging"  # a checkpoint being written, renamed into place piece by piece (manifest.json last)
PREVIOUS_DIR = ".previous"  # the replaced checkpoint's files, kept until the new manifest.json is in place
SNAPSHOT_DIR = ".hub_snapshot"  # --hub-strategy every_epoch: the epoch's model files being pushed
LOCAL_ONLY = (STATE_DIR, STAGING_DIR, PREVIOUS_DIR, SNAPSHOT_DIR)  # never pushed: resume state and scratch dirs

SPACE_CONFIG = "space_config.json"  # beside a Space's app.py: the model (and revision) it serves
# The code a Space runs (--create-space ships these, whole folders minus caches): the app and the side-effect-free
# pieces it reads a checkpoint with. The engine, the Hub pushers and the data sources/loaders never run there;
# pyproject.toml's import contracts keep space/ from importing them, and a test checks the list is closed.
SPACE_SOURCES = ("app.py", "space", "trainer/__init__.py", "trainer/errors.py", "trainer/hardware.py",
                 "trainer/config.py", "trainer/audio", "trainer/checkpoint", "trainer/evaluation",
                 "trainer/data/__init__.py", "trainer/data/images.py", "trainer/data/folder_labels.py")


def config_fields(label_names: list[str], audio: dict | None = None, decision: dict | None = None,
                  ood: dict | None = None) -> dict:
    """Our keys in config.json beside timm's: label names, modality (+ the audio front end), the task with how
    probabilities are made and decided (`temperature`; multi-label: `calibration` + `thresholds`), the
    out-of-distribution threshold."""
    fields: dict = {"label_names": list(label_names), "modality": "audio" if audio is not None else "image"}
    if audio is not None:
        fields["audio"] = dict(audio)
        # imported here: decode loads torch and torchaudio, and this module stays import-light for the CLIs
        from trainer.audio.decode import RESAMPLER

        fields["resampler"] = RESAMPLER  # how waves reached audio.sample_rate (the front end's input)
    if decision is not None:
        fields.update({"task": SINGLE_LABEL, **decision})
    if ood is not None:
        fields["ood"] = dict(ood)
    return fields


def primary_split(results: dict) -> str:
    """The split eval/ describes: test when there is one, else val."""
    return "test" if "test" in results else "val"
