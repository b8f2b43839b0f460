"""Evaluate a saved checkpoint on a dataset split (1..N processes): `accelerate launch trainer/validate.py …`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # see trainer/train.py

from trainer.errors import CLIParser, UserError, exit_on_user_error  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Flags: checkpoint, dataset (as in train.py), split, output dir."""
    p = CLIParser(prog="trainer/validate.py", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="checkpoint dir (or local-dir:/hf-hub: model id)")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--dataset-config")
    p.add_argument("--split", default="test")
    p.add_argument("--image-column")
    p.add_argument("--audio-column")
    p.add_argument("--label-column")
    p.add_argument("--max-eval-samples", type=int)
    p.add_argument("--group-column", help="also report metrics per value of this column (groups.json)")
    p.add_argument("--tta", default="none", choices=["none", "flip", "flip-crops"],
                   help="also report test-time augmentation (images): logits averaged over mirrored (and zoomed) "
                   "views; the plain numbers stay as they are")
    p.add_argument("--drop-unlabeled", action="store_true", help="drop rows without a label (None or -1) instead "
                   "of refusing the split")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--output-dir", required=True, help="where metrics.json and predictions.parquet go")
    return p.parse_args(argv)


def loader_for(bundle, checkpoint_config: dict, data_cfg: dict, batch_size: int) -> tuple:
    """(DataLoader, on-device preprocess) of the eval split: images via timm's eval transform, audio via the
    checkpoint's own log-mel front end (its config.json `audio` block)."""
    import torch  # here and in main, not at the top: --help and flag errors answer before torch loads

    if checkpoint_config.get("modality") == "audio":
        from trainer.config import AudioConfig
        from trainer.data.waves import AudioPreprocess, PadCollate, WaveDataset

        cfg = AudioConfig.from_block(checkpoint_config["audio"])
        ds = WaveDataset(bundle.val, bundle.input_column, bundle.label_column, cfg.sample_rate)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size,
                                             collate_fn=PadCollate(cfg.clip_samples, train=False))
        return loader, AudioPreprocess(cfg, train=False, channels_last=False)
    from trainer.data.images import DevicePreprocess, HFImageDataset, eval_transform

    ds = HFImageDataset(bundle.val, bundle.input_column, bundle.label_column, eval_transform(data_cfg, uint8=True))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size), DevicePreprocess(data_cfg, None, False, False)


def our_config(ref: str) -> dict:
    """config.json with our root-level keys (temperature, modality, audio), which timm's loader drops."""
    if ref.startswith("hf-hub:"):
        from trainer.checkpoint.read import open_checkpoint

        return open_checkpoint(ref, with_eval=False)[1]
    path = Path(ref.removeprefix("local-dir:")) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def tta_metrics(accelerator, model, loader, preprocess, mode: str, checkpoint_config: dict, n: int) -> dict:
    """Accuracy, macro F1 and loss with --tta views (images only)."""
    from trainer.evaluation.predict import predict
    from trainer.evaluation.report import quick_metrics
    from trainer.evaluation.tta import AUDIO_REFUSAL, TTA

    if checkpoint_config.get("modality") == "audio":
        raise UserError(AUDIO_REFUSAL)
    return {"mode": mode, **quick_metrics(predict(accelerator, TTA(model, mode), loader, preprocess), n)}


def main(argv: list[str] | None = None) -> dict:
    """Load the checkpoint with plain timm, predict the split on every process, write metrics once."""
    # imported here, not at the top: --help and flag errors answer before torch, timm and datasets load
    import timm
    import torch
    from accelerate import Accelerator

    from trainer.checkpoint.write import write_json, write_predictions
    from trainer.config import DataConfig
    from trainer.data.bundle import build_data
    from trainer.evaluation.calibration import per_sample_loss
    from trainer.evaluation.predict import predict
    from trainer.evaluation.report import full_metrics, group_metrics

    args = parse(argv)
    name = args.checkpoint if ":" in args.checkpoint else f"local-dir:{args.checkpoint}"
    torch.set_flush_denormal(True)  # denormals slow x86 CPUs down ~4x (see trainer/pipeline.py)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model = timm.create_model(name, pretrained=True)
    data_cfg = timm.data.resolve_data_config({}, model=model)
    label_names = model.pretrained_cfg.get("label_names")
    cfg = DataConfig(dataset=args.dataset, dataset_config=args.dataset_config, train_split=args.split,
                     val_split=args.split, image_column=args.image_column, audio_column=args.audio_column,
                     label_column=args.label_column,
                     max_eval_samples=args.max_eval_samples, group_column=args.group_column,
                     drop_unlabeled=args.drop_unlabeled)
    with accelerator.main_process_first():
        bundle = build_data(cfg, seed=0)
    if label_names and list(label_names) != bundle.label_names:
        raise UserError(f"the checkpoint's labels {label_names} differ from the dataset's {bundle.label_names}.")
    checkpoint_config = our_config(args.checkpoint)
    loader, preprocess = loader_for(bundle, checkpoint_config, data_cfg, args.batch_size)
    model, loader = accelerator.prepare(model, loader)
    pred = predict(accelerator, model, loader, preprocess)
    pred["loss"] = per_sample_loss(pred["logits"], pred["labels"])
    temperature = float(checkpoint_config.get("temperature", 1.0))
    result = full_metrics(pred, len(bundle.label_names), temperature)
    if args.tta != "none":  # beside the plain numbers, never instead of them
        result["metrics"]["tta"] = tta_metrics(accelerator, model, loader, preprocess, args.tta,
                                               checkpoint_config, len(bundle.label_names))
    if accelerator.is_main_process:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", {"split": args.split, "num_processes": accelerator.num_processes,
                                          **result["metrics"]})
        write_predictions(out / "predictions.parquet", {args.split: pred})
        accelerator.print(f"{args.split}: accuracy {result['metrics']['accuracy']:.4f} on "
                          f"{len(pred['labels'])} samples ({accelerator.num_processes} processes)", flush=True)
        if "tta" in result["metrics"]:
            accelerator.print(f"{args.split}: accuracy {result['metrics']['tta']['accuracy']:.4f} with --tta "
                              f"{args.tta} (plain {result['metrics']['accuracy']:.4f})", flush=True)
        if args.group_column:
            groups = group_metrics(pred, bundle.val[args.group_column], len(bundle.label_names))
            write_json(out / "groups.json", {"column": args.group_column, args.split: groups})
            for value, m in groups.items():
                accelerator.print(f"  {args.group_column}={value}: accuracy {m['accuracy']:.4f} "
                                  f"({m['num_samples']} samples)", flush=True)
    accelerator.wait_for_everyone()
    return result["metrics"]


if __name__ == "__main__":
    exit_on_user_error(main)
