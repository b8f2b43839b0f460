"""Write the checkpoint contract (timm HF format + eval/ + manifest) into the output dir atomically."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from trainer.checkpoint.card import write_card
from trainer.checkpoint.contract import (
    CONFIG,
    EVAL_DIR,
    MANIFEST,
    MULTI_LABEL,
    ONNX,
    PREVIOUS_DIR,
    RESOLVED_CONFIG,
    SCHEMA_VERSION,
    STAGING_DIR,
    TRAIN_CONFIG,
    WEIGHTS,
    config_fields,
    primary_split,
)
from trainer.checkpoint.integrity import digests, restore
from trainer.checkpoint.samples import write_explanations, write_multilabel_samples, write_samples
from trainer.errors import scrub_artifact
from trainer.evaluation.plots import confusion_matrix_figure, reliability_figure, save_png

PACKAGES = ("torch", "torchvision", "timm", "accelerate", "datasets", "evaluate", "huggingface_hub", "safetensors")


def write_json(path: Path, obj) -> None:
    """JSON via temp file + rename; token values and the home directory never reach the file (scrub_artifact)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(scrub_artifact(json.loads(json.dumps(obj, default=_jsonable))), indent=2) + "\n")
    os.replace(tmp, path)


def _jsonable(o):
    """numpy scalars/arrays and paths in JSON."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def redact_argv(argv: list[str], secrets: tuple = ("--hub-token",)) -> list[str]:
    """The command line with secret values replaced by ***."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
        elif arg in secrets:
            out.append(arg)
            hide = True
        elif arg.split("=", 1)[0] in secrets:
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
    return out


def git_state(cwd: Path = Path(__file__).resolve().parents[2]) -> tuple[str | None, bool | None]:
    """(HEAD sha, whether tracked files differ from it) of the git checkout whose root is cwd (this code's own, by
    default); (None, None) when cwd is not a checkout's root (an installed package, even inside someone's repo) or
    without git. Untracked files do not count: a scratch file is not a code change."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=cwd)

    try:
        head, top = git("rev-parse", "HEAD"), git("rev-parse", "--show-toplevel")
        if head.returncode != 0 or not head.stdout.strip() or Path(top.stdout.strip()).resolve() != Path(cwd).resolve():
            return None, None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None


def manifest(argv: list[str], config: dict, source: dict, wall_s: float, hardware: dict,
             chosen: dict | None = None) -> dict:
    """Provenance of a run: command, resolved config (+ the options the trainer `chosen`), versions, git sha, data,
    hardware, time, schema version."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    sha, dirty = git_state()
    return {"schema_version": SCHEMA_VERSION, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": redact_argv(argv), "config": config, "dataset": source, "seed": config.get("seed"),
            "versions": {"python": platform.python_version(), **versions}, "git_sha": sha, "git_dirty": dirty,
            "hardware": hardware, "wall_time_s": round(wall_s, 1), "chosen": chosen or {}}


def _rows(matrix: np.ndarray, dtype) -> "pa.FixedSizeListArray":  # noqa: F821 - pyarrow imported lazily
    """An (N, C) array as one fixed-size list per row."""
    import pyarrow as pa

    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.astype(dtype).reshape(-1)), matrix.shape[1])


def write_predictions(path: Path, preds: dict) -> None:
    """eval/predictions.parquet: split, index, label, pred, loss, raw logits — one row per evaluated sample;
    multi-label: label and pred are multi-hot rows (pred at the tuned thresholds), plus the calibrated `probs`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for split, p in preds.items():
        logits = p["logits"].astype(np.float32)
        columns = {"split": [split] * len(logits), "index": p["index"].astype(np.int64)}
        if p["labels"].ndim == 2:
            columns.update(label=_rows(p["labels"], np.uint8), pred=_rows(p["pred"], np.uint8),
                           probs=_rows(p["probs"], np.float32))
        else:
            columns.update(label=p["labels"].astype(np.int64), pred=logits.argmax(1).astype(np.int64))
        columns.update(loss=p["loss"].astype(np.float32), logits=_rows(logits, np.float32))
        tables.append(pa.table(columns))
    tmp = Path(f"{path}.tmp")
    pq.write_table(pa.concat_tables(tables), tmp)
    os.replace(tmp, path)


MULTILABEL_CONFUSION = "multilabel_confusion.json"  # per class TP/FP/FN/TN of a multi-label model
CONFUSION_COUNTS = ("tp", "fp", "fn", "tn")


def _per_class(per_class: dict, label_names: list[str]) -> dict:
    """{label: {precision, recall, f1, specificity, support}} (multi-label: {ap, precision, recall, f1, support,
    threshold})."""
    return {name: {k: values[i] for k, values in per_class.items()} for i, name in enumerate(label_names)}


def _write_eval(eval_dir: Path, results: dict, primary: str, label_names: list[str], history: list) -> None:
    """metrics.json (every split), per_class/confusion/reliability for the primary split, groups.json."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    main = results[primary]
    write_json(eval_dir / "metrics.json", {"primary_split": primary,
                                           **{s: r["metrics"] for s, r in results.items()}})
    per_class = dict(main["per_class"])
    if "confusion_matrix" in main:
        write_json(eval_dir / "confusion_matrix.json", {"split": primary, "labels": label_names,
                                                        "matrix": main["confusion_matrix"]})
    else:  # multi-label: one-vs-rest counts per class instead of one matrix
        counts = {k: per_class.pop(k) for k in CONFUSION_COUNTS}
        write_json(eval_dir / MULTILABEL_CONFUSION, {"split": primary, "labels": label_names, **counts})
    write_json(eval_dir / "per_class.json", _per_class(per_class, label_names))
    write_json(eval_dir / "reliability.json", {"split": primary, **main["reliability"]})
    write_json(eval_dir / "history.json", history)
    groups = {s: r["groups"] for s, r in results.items() if r.get("groups")}
    if groups:  # --group-column
        column = next(iter(groups.values()))["column"]
        write_json(eval_dir / "groups.json", {"column": column, **{s: g["groups"] for s, g in groups.items()}})
    _write_plots(eval_dir, main, label_names, primary)


def _write_plots(eval_dir: Path, main: dict, label_names: list[str], primary: str) -> None:
    """confusion_matrix.png (single-label) and reliability.png for the model card and for people browsing the
    files."""
    if "confusion_matrix" in main:
        save_png(confusion_matrix_figure(main["confusion_matrix"], label_names, title=f"{primary} split"),
                 eval_dir / "confusion_matrix.png")
    after = "temperature-scaled" if "confusion_matrix" in main else "Platt-scaled"  # multi-label: Platt per class
    save_png(reliability_figure(main["reliability"], after), eval_dir / "reliability.png")


def install(staging: Path, out: Path) -> None:
    """Move a complete staged checkpoint into out, manifest.json last, keeping each replaced file in .previous/
    until then: a kill at any point leaves the set the current manifest.json names (checkpoint/integrity.py)."""
    restore(out)  # an earlier write was interrupted: put the set its manifest trusts back in place first
    previous = out / PREVIOUS_DIR
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for item in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST):  # manifest last
        target = out / item.name
        if target.exists() and item.name != MANIFEST:  # manifest.json itself is replaced in one rename
            if target.is_dir():
                target.rename(previous / item.name)
            else:
                try:
                    os.link(target, previous / item.name)  # the old bytes stay reachable, at no copy cost
                except OSError:  # a filesystem without hard links
                    shutil.copy2(target, previous / item.name)
        os.replace(item, target)
    shutil.rmtree(previous, ignore_errors=True)
    staging.rmdir()


def save_model_files(model, directory: Path, data_cfg: dict, label_names: list[str], audio: dict | None = None,
                     decision: dict | None = None, state_dict: dict | None = None,
                     ood: dict | None = None) -> None:
    """config.json + model.safetensors in timm's HF format: the one writer of model files (final and every-epoch).

    This is timm.models.save_for_hf(safe_serialization=True) without its one step that fails here: save_for_hf
    saves model.state_dict() as it is, and safetensors refuses channels_last strides. Converting the live model in
    place would change the memory format of a model that may still be training, so the tensors are made
    contiguous on their way to the file instead. state_dict: the full weights gathered on every process
    (accelerator.get_state_dict) where the model itself may hold only a shard (FSDP, DeepSpeed ZeRO-3).
    """
    from safetensors.torch import save_file
    from timm.models._hub import save_config_for_hf  # save_for_hf's own config writer (not re-exported by timm)

    directory.mkdir(parents=True, exist_ok=True)
    weights = model.state_dict() if state_dict is None else state_dict
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(directory / WEIGHTS))
    save_config_for_hf(model, str(directory / CONFIG), data_config=data_cfg,
                                   model_config=config_fields(label_names, audio, decision, ood))


def write_checkpoint(out: Path, model, data_cfg: dict, label_names: list[str], decision: dict,
                     train_config: tuple[dict, dict], results: dict, preds: dict, sample_ds, input_column: str,
                     history: list, run_manifest: dict, audio: dict | None = None,
                     preflight: dict | None = None, state_dict: dict | None = None, ood: dict | None = None,
                     on_manifest: Callable[[], dict] | None = None) -> None:
    """Stage the whole contract in out/.staging (manifest.json with each file's sha256), then install it.
    decision: config.json's `temperature`, or a multi-label model's `task`, `calibration` and `thresholds`;
    train_config: (the request, train_config.json; the resolved run, resolved_config.json);
    on_manifest: more manifest keys, asked for just before it is written (the time budget's table)."""
    staging = out / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    save_model_files(model, staging, data_cfg, label_names, audio, decision, state_dict, ood)
    write_json(staging / TRAIN_CONFIG, train_config[0])
    write_json(staging / RESOLVED_CONFIG, train_config[1])
    primary = primary_split(results)
    _write_eval(staging / EVAL_DIR, results, primary, label_names, history)
    write_predictions(staging / EVAL_DIR / "predictions.parquet", preds)
    samples_dir = staging / EVAL_DIR / "samples"
    if decision.get("task") == MULTI_LABEL:
        samples = write_multilabel_samples(samples_dir, sample_ds, input_column, preds[primary], label_names)
    else:
        samples = write_samples(samples_dir, sample_ds, input_column, preds[primary], label_names,
                                decision["temperature"])
    if audio is None:  # Grad-CAM of the worst mistakes; a spectrogram thumbnail is not the model's input
        note = write_explanations(samples_dir, model, data_cfg, sample_ds, input_column, samples["top_loss"],
                                  label_names)
        if note:
            samples["explain_error"] = note
    write_json(staging / EVAL_DIR / "samples.json", {"split": primary, **samples})
    if preflight is not None:
        write_json(staging / EVAL_DIR / "preflight.json", preflight)
    extra = on_manifest() if on_manifest is not None else {}
    write_json(staging / MANIFEST, {**run_manifest, **extra, "files": digests(staging)})  # what readers will trust
    write_card(staging, final_dir=out)
    install(staging, out)
    # an ONNX file exported from the weights just replaced would be pushed beside them: it goes (re-export it)
    (out / ONNX).unlink(missing_ok=True)
