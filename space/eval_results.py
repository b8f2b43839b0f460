"""The Validation-metrics tab's content, read ONLY from a checkpoint's eval/ artifacts: nothing is re-evaluated."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from space.image_uploads import md_escape
from trainer.checkpoint.contract import MULTI_LABEL
from trainer.errors import scrub_artifact
from trainer.evaluation.plots import reliability_figure
from trainer.evaluation.predict import latency_text

EVAL_FILES = ("metrics", "per_class", "confusion_matrix", "reliability", "samples", "history")
HEADLINE = {"accuracy": "accuracy", "top5_accuracy": "top-5 accuracy", "balanced_accuracy": "balanced accuracy",
            "f1_macro": "macro F1", "precision_macro": "macro precision", "recall_macro": "macro recall",
            "f1_weighted": "weighted F1", "loss": "loss (cross-entropy)", "ece": "ECE (raw)",
            "ece_calibrated": "ECE (temperature-scaled)", "nll": "NLL (raw)", "nll_calibrated": "NLL (scaled)",
            "temperature": "temperature", "num_samples": "samples", "latency_ms_batch1": "latency, batch 1 (ms)",
            "latency_ms_p95_batch1": "latency p95, batch 1 (ms)", "latency_budget_ms": "latency budget (ms)",
            "throughput_img_s_batch32": "throughput, batch 32 (/s)",
            # multi-label checkpoints (schema 6): at the tuned per-class thresholds unless named otherwise
            "map": "mAP (macro)", "map_micro": "mAP (micro)", "f1_micro": "micro F1",
            "precision_micro": "micro precision", "recall_micro": "micro recall", "subset_accuracy": "subset accuracy",
            "hamming_loss": "Hamming loss", "f1_macro_at_0.5": "macro F1 at 0.5", "f1_micro_at_0.5": "micro F1 at 0.5",
            "labels_per_sample": "labels per sample"}
PER_CLASS = ("precision", "recall", "f1", "specificity", "support")
COUNTS = ("support", "tp", "fp", "fn", "tn")  # per-class columns shown as whole numbers
_SERVED: dict[Path, Path] = {}
_SERVED_LOCK = threading.Lock()


def read_eval(path: Path) -> dict:
    """eval/*.json and manifest.json of a checkpoint dir; absent files are listed under 'missing'."""
    out: dict = {"missing": []}
    for name in EVAL_FILES:
        file = path / "eval" / f"{name}.json"
        if file.is_file():
            out[name] = json.loads(file.read_text())
        else:
            out["missing"].append(f"eval/{name}.json")
    # groups: --group-column runs; preflight: schema 3 and later; multilabel_confusion: multi-label (schema 6)
    for optional in ("groups", "preflight", "multilabel_confusion"):
        file = path / "eval" / f"{optional}.json"
        if file.is_file():
            out[optional] = json.loads(file.read_text())
    manifest = path / "manifest.json"
    out["manifest"] = json.loads(manifest.read_text()) if manifest.is_file() else {}
    return out


def primary(ev: dict) -> tuple[str, dict]:
    """(split name, its headline metrics) that per-class, confusion and reliability describe."""
    metrics = ev.get("metrics", {})
    split = metrics.get("primary_split") or next((k for k in metrics if isinstance(metrics[k], dict)), "")
    return split, metrics.get(split, {})


def summary_frame(ref: str, config: dict, ev: dict) -> pd.DataFrame:
    """Model summary, one row per field: checkpoint, architecture, labels, input, dataset, date, command, versions.

    A table component rather than Markdown: its key column keeps its width on a phone, and the values (which come
    from someone's checkpoint) are shown as text, never rendered.
    """
    man, pcfg = ev.get("manifest", {}), config.get("pretrained_cfg", {})
    data, hw = man.get("dataset") or {}, man.get("hardware") or {}
    labels = config["label_names"]
    shown = ", ".join(labels[:20]) + (f" … (+{len(labels) - 20})" if len(labels) > 20 else "")
    sizes = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in (data.get("sizes") or {}).items())
    versions = man.get("versions") or {}
    rows = {
        "checkpoint": ref,
        "architecture": f"{config.get('architecture')} ({config.get('modality', 'image')})",
        "classes": f"{len(labels)}: {shown}",
        "input": f"{'×'.join(map(str, pcfg.get('input_size', [])))}, {pcfg.get('interpolation')}, "
                 f"crop_pct {pcfg.get('crop_pct')}, mean {pcfg.get('mean')}, std {pcfg.get('std')}",
        "temperature": f"{float(config.get('temperature') or 1.0):.3f} (applied to every prediction)"
        if config.get("task") != MULTI_LABEL else "multi-label: per-class Platt scaling, then per-class "
        "thresholds tuned for F1 on validation",
        "dataset": f"{data.get('dataset', '?')}" + (f" @ {data['revision']}" if data.get("revision") else "")
                   + (f" — {sizes}" if sizes else ""),
        "trained": f"{man.get('created', '?')}, wall time {man.get('wall_time_s', '?')} s on "
                   f"{hw.get('device', '?')} × {hw.get('num_processes', '?')} process(es)",
        "command": " ".join(man.get("command") or []),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v),
        "git sha": f"{(man.get('git_sha') or '?')[:12]} · checkpoint schema {man.get('schema_version', '?')}",
    }
    groups = ev.get("groups") or {}
    for split in ("val", "test"):
        if isinstance(groups.get(split), dict):  # --group-column: accuracy per group, e.g. per held-out accent
            rows[f"{split} per {groups.get('column', 'group')}"] = " · ".join(
                f"{value} {m.get('accuracy', 0):.4f} ({m.get('num_samples', '?')})"
                for value, m in groups[split].items())
    latency = eval_latency_line(primary(ev)[1])
    if latency:
        rows["eval latency"] = latency
    missing = ev.get("missing") or []
    if missing:
        rows["missing files"] = ", ".join(missing)
    # the serving process's own token never shows, nor a token quoted by someone else's checkpoint
    return pd.DataFrame([[k, scrub_artifact(str(v))] for k, v in rows.items()], columns=["run", ""])


def eval_latency_line(metrics: dict) -> str:
    """The eval-time latency of eval/metrics.json in words ('' for checkpoints without latency)."""
    text = latency_text(metrics)
    return f"{text}, one input, preprocessing + forward" if text else ""


@functools.lru_cache(maxsize=16)
def served_latency_line(path: Path) -> str:
    """eval_latency_line of a served checkpoint dir, read once: each prediction shows it, and the checkpoint (like
    the model loaded from it) does not change while it is served."""
    file = path / "eval" / "metrics.json"
    return eval_latency_line(primary({"metrics": json.loads(file.read_text()) if file.is_file() else {}})[1])


def headline_frame(metrics: dict) -> pd.DataFrame:
    """One row per headline metric, one column per evaluated split (test, val)."""
    splits = [s for s, v in metrics.items() if isinstance(v, dict)]
    rows = []
    multi = any("subset_accuracy" in metrics[s] for s in splits)
    for key, name in HEADLINE.items():
        if multi and key == "accuracy":  # the same number as subset accuracy, under its multi-label name
            continue
        values = [metrics[s].get(key) for s in splits]
        if any(v is not None for v in values):
            rows.append([name, *(round(float(v), 4) if v is not None else None for v in values)])
    return pd.DataFrame(rows, columns=["metric", *splits])


def per_class_frame(per_class: dict) -> pd.DataFrame:
    """Per label: precision, recall, F1, specificity (rounded) and support; multi-label: AP, precision, recall, F1,
    support and threshold."""
    first = next(iter(per_class.values()), {})
    columns = [k for k in first if k in (*PER_CLASS, "ap", "threshold")] or list(PER_CLASS)

    def cell(k: str, v):
        return None if v is None else int(v) if k in COUNTS else round(float(v), 4)

    rows = [[label, *(cell(k, s.get(k)) for k in columns)] for label, s in per_class.items()]
    return pd.DataFrame(rows, columns=["label", *columns])


def confused_pairs(confusion: dict, top: int = 10) -> pd.DataFrame:
    """The largest off-diagonal cells: true label, predicted label, count and share of the true class."""
    cm, labels = np.asarray(confusion["matrix"], dtype=np.int64), confusion["labels"]
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    rows = []
    for flat in order:
        t, p = np.unravel_index(flat, off.shape)
        if off[t, p] == 0:
            break
        rows.append([labels[t], labels[p], int(off[t, p]), round(off[t, p] / max(cm[t].sum(), 1), 4)])
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "share of true class"])


NORMALIZE = {"counts": None, "rows (recall)": 1, "columns (precision)": 0}


def confusion_frame(confusion: dict, normalize: str = "counts"):
    """The confusion matrix as a table styled as a heat map (rows = true, columns = predicted): counts, or shares
    of each row (recall) or column (precision). Column 0 holds the true labels; a click on cell (r, c ≥ 1) is the
    (true r, predicted c - 1) cell."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {list(NORMALIZE)}")
    cm, labels = np.asarray(confusion["matrix"], dtype=np.float64), list(confusion["labels"])
    axis = NORMALIZE[normalize]
    if axis is not None:
        cm = cm / np.maximum(cm.sum(axis=axis, keepdims=True), 1)
    frame = pd.DataFrame(cm.round(3) if axis is not None else cm.astype(np.int64), columns=labels)
    frame.insert(0, "true \\ predicted", labels)
    return frame.style.background_gradient(cmap="Blues", axis=None, subset=labels).format(
        precision=3 if axis is not None else 0, subset=labels)


def reliability_plot(reliability: dict, multi_label: bool = False):
    """trainer.evaluation.plots' reliability diagram, before and after temperature (multi-label: Platt) scaling."""
    return reliability_figure(reliability, "Platt-scaled" if multi_label else "temperature-scaled")


def calibration_markdown(metrics: dict, multi_label: bool = False) -> str:
    """ECE/NLL before → after temperature scaling (multi-label: per-class Platt scaling), in one line."""
    if "ece" not in metrics:
        return "No calibration numbers in eval/metrics.json."
    nan = float("nan")
    if multi_label:
        how = "Per-class Platt scaling takes the expected calibration error (over every sample × class probability)"
        nll = "NLL (binary cross-entropy)"
        after = "The app applies it to every prediction, then each class's threshold."
    else:
        how = f"Temperature **{metrics.get('temperature', 1.0):.3f}** takes the expected calibration error"
        nll, after = "NLL", "The app applies this temperature to every prediction."
    return (f"{how} from **{metrics['ece']:.4f}** to **{metrics.get('ece_calibrated', nan):.4f}** and the {nll} from "
            f"{metrics.get('nll', nan):.4f} to {metrics.get('nll_calibrated', nan):.4f}. {after}")


def history_frame(history: list) -> pd.DataFrame:
    """Per-epoch training loss and validation metrics (rounded)."""
    frame = pd.DataFrame(history or [])
    return frame.round(4) if len(frame) else frame


def served_samples(path: Path) -> Path:
    """A copy of eval/ thumbnails under the temp dir, once per checkpoint.

    Why: gradio only serves files from the working dir, the temp dir or launch(allowed_paths); a Hub checkpoint
    sits in the HF cache, and allowing the whole cache would expose every other model in it.
    """
    with _SERVED_LOCK:
        if path not in _SERVED:
            root = Path(tempfile.mkdtemp(prefix="timm-space-eval-"))
            if (path / "eval" / "samples").is_dir():
                shutil.copytree(path / "eval" / "samples", root / "samples")
            _SERVED[path] = root
    return _SERVED[path]


def _inside(root: Path, name) -> Path | None:
    """root/name if it is a file inside root: samples.json comes from someone's repo and may say ../../x."""
    if not isinstance(name, str):
        return None
    path = (root / name).resolve()
    return path if path.is_relative_to(root.resolve()) and path.is_file() else None


def _items(root: Path, entries: list[dict], caption) -> list[tuple[str, str]]:
    """(file, caption) gallery items for samples.json entries whose thumbnail exists inside the served copy."""
    return [(str(path), caption(e)) for e in entries if isinstance(e, dict)
            and (path := _inside(root, e.get("file"))) is not None]


def _caption(e: dict) -> str:
    """'true → predicted · p 0.81 (true 0.12)': calibrated probabilities where the checkpoint has them (schema 3)."""
    if "prob" in e:
        return f"{e['label']} → {e['pred']} · p {e['prob']:.2f} (true {e.get('prob_true', float('nan')):.2f})"
    return f"{e['label']} → {e['pred']} (loss {e['loss']:.2f})"


def top_loss_items(root: Path, samples: dict) -> list[tuple[str, str]]:
    """The highest-loss samples, captioned 'true → predicted' with their probabilities."""
    return _items(root, samples.get("top_loss", []), _caption)


def explain_items(root: Path, samples: dict) -> list[tuple[str, str]]:
    """Grad-CAM overlays of the highest-loss samples: where the model looked for the class it wrongly chose."""
    entries = [{**e, "file": e["explain"]} for e in samples.get("top_loss", [])
               if isinstance(e, dict) and isinstance(e.get("explain"), str)]
    return _items(root, entries, _explain_caption)


def _explain_caption(e: dict) -> str:
    """'true → predicted: where it saw X' (multi-label: the class it got most wrong, with its probability)."""
    if "target_label" in e:
        return f"{e['label']} → {e['pred']}: where it saw {e['target_label']} (p {e.get('target_prob', 0):.2f})"
    return f"{e['label']} → {e['pred']}: where it saw {e['pred']}"


def example_items(root: Path, samples: dict) -> list[tuple[str, str]]:
    """One correctly classified example per class, captioned with its label."""
    return _items(root, samples.get("examples", []), lambda e: e["label"])


def cell_choices(samples: dict, confusion: dict) -> list[tuple[str, str]]:
    """Dropdown choices 'true → predicted (count)' for every cell with thumbnails: confused cells first, largest
    first, then the diagonal (correct) ones."""
    cm, labels = np.asarray(confusion["matrix"]), confusion["labels"]
    n = len(labels)
    keys = [tp for k in samples.get("cells", {}) if len(tp := _key(k, n)) == 2]
    keys.sort(key=lambda tp: (tp[0] == tp[1], -cm[tp]))
    return [(f"{labels[t]} → {labels[p]} ({int(cm[t, p])})", f"{t},{p}") for t, p in keys]


def _key(key: str, n: int) -> tuple[int, ...]:
    """(t, p) of a 't,p' cell key with both inside 0…n-1, else ()."""
    try:
        t, p = (int(x) for x in str(key).split(","))
    except ValueError:
        return ()
    return (t, p) if 0 <= t < n and 0 <= p < n else ()


def cell_items(root: Path, samples: dict, key: str | None) -> list[tuple[str, str]]:
    """Thumbnails of one (true, predicted) cell ('t,p'), captioned with their probabilities."""
    return _items(root, samples.get("cells", {}).get(key or "", []), _caption)


def cell_note(confusion: dict, samples: dict, key: str | None) -> str:
    """What a clicked cell holds: count, share of the true class, and how many thumbnails the checkpoint kept."""
    labels = confusion["labels"]
    tp = _key(key or "", len(labels))
    if not tp:
        return "Click a cell of the matrix to see its samples."
    cm = np.asarray(confusion["matrix"])
    t, p = tp
    count, shown = int(cm[t, p]), len(samples.get("cells", {}).get(f"{t},{p}", []))
    kind = "correct" if t == p else "mistaken"
    text = (f"**{labels[t]} → {labels[p]}**: {count} {kind} sample(s), {count / max(cm[t].sum(), 1):.1%} of "
            f"true {labels[t]}.")
    if count and not shown:
        text += " The checkpoint kept no thumbnails for this cell (eval/samples/ is capped)."
    elif shown:
        text += f" Showing {shown}, highest loss first."
    return text


def pair_key(confusion: dict, true: str, pred: str) -> str | None:
    """'t,p' for a (true, predicted) label pair, None if a label is unknown."""
    labels = confusion["labels"]
    return f"{labels.index(true)},{labels.index(pred)}" if true in labels and pred in labels else None


def _examples(pairs: list, joiner: str) -> list[str]:
    """Listed offending files ('split: name (label)' each), escaped: names come from someone's data."""
    return [f"- {joiner.join(md_escape(x, 160) for x in pair)}" for pair in pairs if isinstance(pair, list)]


def preflight_markdown(report: dict | None) -> str:
    """eval/preflight.json for people: rows, classes, imbalance, sizes per split, then duplicates and leakage."""
    if not report:
        return ("No data preflight in this checkpoint (trained before checkpoint schema 3, or on streamed data). "
                "Run `python trainer/preflight.py --dataset …` to check the data.")
    lines = ["| split | rows | classes | imbalance (largest / smallest class) | sizes | modes |",
             "|---|---|---|---|---|---|"]
    for name, s in (report.get("splits") or {}).items():
        sizes = ", ".join(f"{md_escape(k)} ×{v}" for k, v in list((s.get("sizes") or {}).items())[:3])
        modes = ", ".join(f"{md_escape(k)} ×{v}" for k, v in (s.get("modes") or {}).items())
        lines.append(f"| {md_escape(name)} | {s.get('rows', '?'):,} | {len(s.get('per_class') or {})} | "
                     f"×{s.get('imbalance_ratio')} | {sizes or '–'} | {modes or '–'} |")
    dup, conflicts = report.get("exact_duplicates") or {}, report.get("label_conflicts") or {}
    if report.get("leakage"):
        lines += ["", f"### ⚠️ Leakage: the same file is in more than one split {dup.get('across_splits')}",
                  "Evaluation on those rows measures memory, not generalisation. Remove them from one side:",
                  *_examples(dup.get("across_examples") or [], " == ")]
    else:
        lines += ["", "✅ No file is in more than one split (exact content hash)."]
    if dup.get("within_split"):
        lines.append(f"\nExact duplicates within a split: {md_escape(dup['within_split'])}.")
    if conflicts.get("count"):
        lines += [f"\n### ⚠️ {conflicts['count']} file(s) carry two different labels",
                  *_examples(conflicts.get("examples") or [], " vs ")]
    if report.get("skipped_files"):
        lines.append(f"\n{report['skipped_files']} unreadable file(s) were skipped.")
    if "seconds" in report:
        lines.append(f"\nChecked in {report['seconds']} s at the start of training.")
    return "\n".join(lines)
