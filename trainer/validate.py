"""Evaluate a saved checkpoint on a dataset split (1..N processes): `accelerate launch trainer/validate.py …`.

--backend onnx evaluates CHECKPOINT/model.onnx (trainer/export.py) with ONNX Runtime on the CPU instead of the
timm model, on the same loader and preprocessing: the same numbers, from the file a server would run (1 process).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.errors import CLIParser, UserError, exit_on_user_error

# train.py's data flags that apply to an evaluation (trainer/flags.py generates them); the ones in TRAINED default to
# the checkpoint's own request (train_config.json), so `validate.py --checkpoint DIR` scores the data it was trained on
DATA_FLAGS = ("dataset", "dataset_config", "dataset_revision", "image_column", "audio_column", "label_column",
              "label_sep", "group_column", "max_eval_samples", "drop_unlabeled")
TRAINED = ("dataset", "dataset_config", "dataset_revision", "image_column", "audio_column", "label_column",
           "label_sep")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Flags: checkpoint, the data flags of train.py, split, output dir."""
    from trainer.flags import add_section_flags

    p = CLIParser(prog="trainer/validate.py", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="checkpoint dir (or local-dir:/hf-hub: model id)")
    p.add_argument("--split", default="test")
    add_section_flags(p, "data", DATA_FLAGS)  # unset: the checkpoint's own dataset and columns (TRAINED)
    p.add_argument("--tta", default="none", choices=["none", "flip", "flip-crops"],
                   help="also report test-time augmentation (images): logits averaged over mirrored (and zoomed) "
                   "views; the plain numbers stay as they are")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                   help="run the timm model (torch) or CHECKPOINT/model.onnx with ONNX Runtime on the CPU (onnx; "
                   "write it with trainer/export.py)")
    p.add_argument("--output-dir", required=True, help="where metrics.json and predictions.parquet go")
    return p.parse_args(argv)


def trained_request(ref: str) -> dict:
    """The checkpoint's train_config.json `data` section ({} when it has none: plain timm checkpoints)."""
    from trainer.checkpoint.contract import TRAIN_CONFIG

    if ref.startswith("hf-hub:"):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError

        from trainer.checkpoint.read import parse_ref

        repo = parse_ref(ref)
        try:
            path = Path(hf_hub_download(repo.repo_id, TRAIN_CONFIG, revision=repo.revision))
        except (OSError, ValueError, HfHubHTTPError):  # a plain timm repo has none: the flags (or defaults) decide
            return {}
    else:
        path = Path(ref.removeprefix("local-dir:")) / TRAIN_CONFIG
    try:
        data = json.loads(path.read_text()).get("data", {}) if path.is_file() else {}
    except (OSError, ValueError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def data_options(args: argparse.Namespace, trained: dict) -> dict:
    """DataConfig keyword arguments: the flags given, else the checkpoint's own (TRAINED), else DataConfig's."""
    given = {name: getattr(args, name) for name in DATA_FLAGS if hasattr(args, name)}
    return {**{k: trained[k] for k in TRAINED if trained.get(k) is not None}, **given}


def loader_for(bundle, checkpoint_config: dict, data_cfg: dict, batch_size: int) -> tuple:
    """(DataLoader, on-device preprocess) of the eval split: images via timm's eval transform, audio via the
    checkpoint's own log-mel front end (its config.json `audio` block); multi-hot targets for multi-label data."""
    import torch  # here and in main, not at the top: --help and flag errors answer before torch loads

    from trainer.data.loaders import split_targets

    targets = split_targets(bundle, bundle.val)

    if checkpoint_config.get("modality") == "audio":
        from trainer.config import AudioConfig
        from trainer.data.waves import AudioPreprocess, PadCollate, WaveDataset

        cfg = AudioConfig.from_block(checkpoint_config["audio"])
        ds = WaveDataset(bundle.val, bundle.input_column, bundle.label_column, cfg.sample_rate, targets)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size,
                                             collate_fn=PadCollate(cfg.clip_samples, train=False))
        return loader, AudioPreprocess(cfg, train=False, channels_last=False)
    from trainer.data.images import DevicePreprocess, HFImageDataset, eval_transform

    ds = HFImageDataset(bundle.val, bundle.input_column, bundle.label_column, eval_transform(data_cfg, uint8=True),
                        targets)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size), DevicePreprocess(data_cfg, None, False, False)


def our_config(ref: str) -> dict:
    """config.json with our root-level keys (temperature, modality, audio), which timm's loader drops."""
    if ref.startswith("hf-hub:"):
        from trainer.checkpoint.read import open_checkpoint

        return open_checkpoint(ref, with_eval=False)[1]
    path = Path(ref.removeprefix("local-dir:")) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def onnx_model_path(args: argparse.Namespace) -> Path | None:
    """CHECKPOINT/model.onnx for --backend onnx (None for torch); refused before anything loads when it cannot run:
    with --tta, from a Hub id, missing, or exported from other weights than the checkpoint's."""
    from trainer.checkpoint.contract import EVAL_DIR, ONNX, WEIGHTS

    if args.backend != "onnx":
        return None
    if args.tta != "none":
        raise UserError("--tta runs the views through the torch model; use it with --backend torch.")
    if args.checkpoint.startswith("hf-hub:"):
        raise UserError("--backend onnx reads model.onnx from a local checkpoint dir (the Hub download serves the "
                        "safetensors weights only); download the repo and pass its dir.")
    ckpt = Path(args.checkpoint.removeprefix("local-dir:"))
    path = ckpt / ONNX
    if not path.is_file():
        raise UserError(f"{path} not found: run `python trainer/export.py --checkpoint {ckpt}` first "
                        "(--backend onnx evaluates the exported model).")
    report = ckpt / EVAL_DIR / "export.json"
    if report.is_file() and (ckpt / WEIGHTS).is_file():
        from trainer.checkpoint.integrity import sha256_of

        if json.loads(report.read_text()).get("weights_sha256") not in (None, sha256_of(ckpt / WEIGHTS)):
            raise UserError(f"{path} was exported from other weights than {ckpt / WEIGHTS} (retrained since?); "
                            f"run `python trainer/export.py --checkpoint {ckpt}` again.")
    return path


class OnnxModel:
    """model.onnx in an ONNX Runtime CPU session, called as predict() calls the torch model (eval(), then x → logits
    on x's device). A fixed-batch export (no --dynamic-batch) is fed in slices of its batch, the last one padded."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        spec = self.session.get_inputs()[0]
        self.name, self.batch = spec.name, spec.shape[0] if isinstance(spec.shape[0], int) else None

    def eval(self) -> "OnnxModel":
        return self

    def __call__(self, x):
        import numpy as np
        import torch

        arr = x.detach().float().cpu().contiguous().numpy()
        step, outs = self.batch or max(len(arr), 1), []
        for start in range(0, len(arr), step):
            chunk = arr[start: start + step]
            pad = step - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self.session.run(None, {self.name: chunk})[0][: step - pad])
        return torch.from_numpy(np.concatenate(outs)).to(x.device)


def tta_metrics(accelerator, model, loader, preprocess, mode: str, checkpoint_config: dict, n: int) -> dict:
    """Accuracy, macro F1 and loss with --tta views (images only)."""
    from trainer.evaluation.predict import predict
    from trainer.evaluation.report import quick_metrics
    from trainer.evaluation.tta import AUDIO_REFUSAL, TTA

    if checkpoint_config.get("modality") == "audio":
        raise UserError(AUDIO_REFUSAL)
    return {"mode": mode, **quick_metrics(predict(accelerator, TTA(model, mode), loader, preprocess), n)}


def write_outputs(accelerator, args: argparse.Namespace, metrics: dict, pred: dict, bundle, group: str | None) -> None:
    """metrics.json, predictions.parquet (+ groups.json) and the printed summary (main process)."""
    from trainer.checkpoint.write import write_json, write_predictions
    from trainer.evaluation.report import group_metrics

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", {"split": args.split, "num_processes": accelerator.num_processes,
                                      "backend": args.backend, **metrics})
    write_predictions(out / "predictions.parquet", {args.split: pred})
    backend = ", ONNX Runtime: model.onnx" if args.backend == "onnx" else ""
    score = f"mAP {metrics['map']:.4f}, micro F1 {metrics['f1_micro']:.4f}, subset " if "map" in metrics else ""
    accelerator.print(f"{args.split}: {score}accuracy {metrics['accuracy']:.4f} on "
                      f"{len(pred['labels'])} samples ({accelerator.num_processes} processes{backend})", flush=True)
    if "tta" in metrics:
        accelerator.print(f"{args.split}: accuracy {metrics['tta']['accuracy']:.4f} with --tta "
                          f"{args.tta} (plain {metrics['accuracy']:.4f})", flush=True)
    if group:
        groups = group_metrics(pred, bundle.val[group], len(bundle.label_names))
        write_json(out / "groups.json", {"column": group, args.split: groups})
        for value, m in groups.items():
            accelerator.print(f"  {group}={value}: accuracy {m['accuracy']:.4f} "
                              f"({m['num_samples']} samples)", flush=True)


def main(argv: list[str] | None = None) -> dict:
    """Load the checkpoint with plain timm, predict the split on every process, write metrics once."""
    # imported here, not at the top: --help and flag errors answer before torch, timm and datasets load
    import timm
    import torch
    from accelerate import Accelerator

    from trainer.config import MULTI_LABEL, SINGLE_LABEL, DataConfig
    from trainer.data.bundle import build_data
    from trainer.evaluation.decision import score_split
    from trainer.evaluation.predict import predict

    args = parse(argv)
    onnx_path = onnx_model_path(args)  # its refusals come before the model and the data load
    name = args.checkpoint if ":" in args.checkpoint else f"local-dir:{args.checkpoint}"
    torch.set_flush_denormal(True)  # denormals slow x86 CPUs down ~4x (see trainer/pipeline.py)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if onnx_path is not None and accelerator.num_processes > 1:
        raise UserError(f"--backend onnx runs one ONNX Runtime session on the CPU: launch 1 process, not "
                        f"{accelerator.num_processes} (plain `python trainer/validate.py …`).")
    model = timm.create_model(name, pretrained=True)
    data_cfg = timm.data.resolve_data_config({}, model=model)
    label_names = model.pretrained_cfg.get("label_names")
    checkpoint_config = our_config(args.checkpoint)
    multi = checkpoint_config.get("task") == MULTI_LABEL  # label lists (or --label-sep strings), scored per class
    cfg = DataConfig(**data_options(args, trained_request(args.checkpoint)), train_split=args.split,
                     val_split=args.split, multi_label=multi, allow_empty_labels=multi)
    accelerator.print(f"dataset {cfg.dataset!r} split {args.split!r}", flush=True)
    with accelerator.main_process_first():
        bundle = build_data(cfg, seed=0)
    if label_names and list(label_names) != bundle.label_names:
        raise UserError(f"the checkpoint's labels {label_names} differ from the dataset's {bundle.label_names}.")
    loader, preprocess = loader_for(bundle, checkpoint_config, data_cfg, args.batch_size)
    if onnx_path is None:
        model, loader = accelerator.prepare(model, loader)
    else:  # the timm model above gave the preprocessing config and labels; model.onnx does the predicting
        model, loader = OnnxModel(onnx_path), accelerator.prepare(loader)
    pred = predict(accelerator, model, loader, preprocess)
    n = len(bundle.label_names)
    decision = {"task": MULTI_LABEL, "calibration": checkpoint_config.get("calibration"),
                "thresholds": checkpoint_config.get("thresholds") or [0.5] * n} if multi else \
        {"task": SINGLE_LABEL, "temperature": float(checkpoint_config.get("temperature", 1.0))}
    result = score_split(pred, n, decision)  # the checkpoint's own temperature, or calibration and thresholds
    if args.tta != "none":  # beside the plain numbers, never instead of them
        result["metrics"]["tta"] = tta_metrics(accelerator, model, loader, preprocess, args.tta,
                                               checkpoint_config, len(bundle.label_names))
    if accelerator.is_main_process:
        write_outputs(accelerator, args, result["metrics"], pred, bundle, cfg.group_column)
    accelerator.wait_for_everyone()
    return result["metrics"]


def cli() -> None:
    """The `timm-space-validate` console script."""
    exit_on_user_error(main)


if __name__ == "__main__":
    cli()
