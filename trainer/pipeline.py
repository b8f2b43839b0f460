"""One training run wired together: accelerator, model, loaders, loop, final evaluation, checkpoint."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from trainer.checkpoint import manifest, primary_split, write_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataBundle
from trainer.errors import UserError
from trainer.evaluation import fit_temperature, full_metrics, measure_latency, per_sample_loss, predict, quick_metrics
from trainer.loaders import build_loaders
from trainer.loop import STATE_DIR, LoopContext, TrainState, build_loss, build_optim, find_resume, fit
from trainer.model import create_model, resolve_data_cfg, set_pretrained_cfg


def make_accelerator(cfg: TrainConfig, out: Path):
    """Accelerator on GPU when there is one, else CPU (gloo) — also under `accelerate launch --multi_gpu`."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    # Fine-tuned ImageNet weights produce denormal floats; on x86 CPUs they made steps ~4x slower (measured).
    torch.set_flush_denormal(True)
    cuda = torch.cuda.is_available()
    if cuda:  # timm train.py does the same: TF32 matmuls and cuDNN autotuning for fixed input sizes
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return Accelerator(
        cpu=not cuda, mixed_precision=resolve_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.grad_accum, log_with=cfg.log_with,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        # pinned uint8 batches copied asynchronously: the copy overlaps the previous step's compute
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, non_blocking=cuda))


def resolve_precision(flag: str | None) -> str | None:
    """--mixed-precision, else fp16/bf16/fp8 chosen through `accelerate launch`/config, else bf16 where CUDA has it.

    `accelerate launch` always exports ACCELERATE_MIXED_PRECISION, "no" when nothing was chosen, so "no" there is
    read as no choice; `--mixed-precision no` is how to train in fp32 on such a GPU.
    """
    if flag is not None or os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no":
        return flag
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False) else None


def check_output_dir(cfg: TrainConfig, overwrite: bool) -> Path:
    """Refuse to mix a new run into a previous one unless --resume or --overwrite-output-dir says so."""
    out = Path(cfg.output_dir)
    previous = (out / "manifest.json").exists() or (out / STATE_DIR).exists()
    if previous and not cfg.resume and not overwrite:
        raise UserError(f"--output-dir {out} holds a previous run. Use --resume auto to continue it, "
                        "--overwrite-output-dir to replace it, or choose another --output-dir.")
    return out


def build_context(cfg: TrainConfig, accelerator, bundle: DataBundle, out: Path) -> tuple[LoopContext, dict]:
    """Model, data config, loaders and optimizer, all prepared by Accelerate; resumes when asked."""
    audio = bundle.modality == "audio"
    model = create_model(cfg.model, len(bundle.label_names), bundle.label_names,
                         in_chans=cfg.audio.in_chans if audio else 3)
    if audio:  # the front end fixes the input size; its normalisation statistics come from the train split
        from trainer.audio_data import build_audio_loaders

        loaders, data_cfg = build_audio_loaders(cfg, bundle, accelerator.num_processes, accelerator.print)
    else:
        data_cfg = resolve_data_cfg(model, cfg.model.img_size, cfg.model.crop_pct)
        if cfg.data.streaming:
            from trainer.streaming import build_stream_loaders

            loaders = build_stream_loaders(cfg, bundle, data_cfg, accelerator)
        else:
            # rank 0 writes the --preresize cache first; the other ranks then read it instead of racing to write it
            with accelerator.main_process_first() if cfg.data.preresize else contextlib.nullcontext():
                loaders = build_loaders(cfg, bundle, data_cfg, accelerator.num_processes)
    set_pretrained_cfg(model, data_cfg)
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    per_process = len(loaders.train) if loaders.sharded else len(loaders.train) // accelerator.num_processes
    steps = max(1, per_process // cfg.grad_accum)
    optimizer, scheduler, epochs = build_optim(model, cfg, steps)
    criterion, mixup = build_loss(cfg, loaders, len(bundle.label_names))
    model, optimizer, loaders.train, loaders.val = accelerator.prepare(model, optimizer, loaders.train, loaders.val)
    if loaders.test is not None:
        loaders.test = accelerator.prepare(loaders.test)
    criterion = criterion.to(accelerator.device)
    ema = None
    if cfg.model_ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(accelerator.unwrap_model(model), decay=cfg.model_ema_decay)
    if cfg.torch_compile:  # in place, after the EMA copy: state_dict keys stay timm's (no `_orig_mod.` prefix)
        accelerator.unwrap_model(model).compile()
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    ctx = LoopContext(cfg, accelerator, model, optimizer, scheduler, loaders, criterion, mixup, ema, state,
                      epochs, out)
    resume = find_resume(out, cfg.resume)
    if resume is not None:
        accelerator.load_state(str(resume))
        accelerator.print(f"resumed from {resume} (epoch {state.epoch + 1} done, step {state.step})", flush=True)
    elif cfg.resume:
        accelerator.print(f"--resume {cfg.resume}: no saved state in {out / STATE_DIR}, starting fresh", flush=True)
    return ctx, data_cfg


def load_best(ctx: LoopContext) -> torch.nn.Module:
    """The best-by-metric weights, loaded into the evaluated (EMA or plain) model."""
    from safetensors.torch import load_file

    model = ctx.accelerator.unwrap_model(ctx.eval_model)
    path = ctx.out / STATE_DIR / "best_model.safetensors"
    if path.exists():
        model.load_state_dict(load_file(str(path)))  # load_state_dict copies onto the model's device
    return model


def final_evaluation(ctx: LoopContext, bundle: DataBundle) -> tuple:
    """Best model → predict val (+ test, once); fit the temperature on val; full metrics for every split."""
    acc, n = ctx.accelerator, len(bundle.label_names)
    model = load_best(ctx)
    preds = {"val": predict(acc, model, ctx.loaders.val, ctx.loaders.eval_preprocess)}
    if ctx.loaders.test is not None:
        preds["test"] = predict(acc, model, ctx.loaders.test, ctx.loaders.eval_preprocess)
    temperature = fit_temperature(preds["val"]["logits"], preds["val"]["labels"])
    results = {}
    for split, p in preds.items():
        p["loss"] = per_sample_loss(p["logits"], p["labels"])
        results[split] = full_metrics(p, n, temperature)
    return model, preds, results, temperature


class _EpochPush:
    """on_epoch_end hook of --hub-strategy every_epoch: a servable snapshot of the current model, pushed async."""

    def __init__(self, cfg: TrainConfig, ctx: LoopContext, data_cfg: dict, label_names: list[str]):
        from trainer.hub import EpochPusher

        self.cfg, self.ctx, self.data_cfg, self.label_names = cfg, ctx, data_cfg, label_names
        self.pusher = EpochPusher(cfg.hub.hub_model_id, cfg.hub.hub_token, cfg.hub.hub_revision,
                                  ctx.out / ".hub_snapshot")

    def write(self, snap: Path) -> None:
        """config.json + model.safetensors (timm HF format) + train_config.json + history of this epoch."""
        from safetensors.torch import save_file
        from timm.models._hub import save_config_for_hf

        from trainer.checkpoint import config_fields, write_json

        model = self.ctx.accelerator.unwrap_model(self.ctx.eval_model)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(snap / "model.safetensors"))
        model_config = config_fields(self.label_names, self.ctx.loaders.audio)
        save_config_for_hf(model, str(snap / "config.json"), model_config=model_config, data_config=self.data_cfg)
        write_json(snap / "train_config.json", self.cfg.to_dict())
        write_json(snap / "history.json", self.ctx.state.history)

    def __call__(self, epoch: int, row: dict) -> None:
        value = row.get(f"val_{self.cfg.metric}")
        message = f"Epoch {epoch + 1}: val {self.cfg.metric} {value:.4f} (training in progress)"
        self.pusher(epoch, self.write, message)


def epoch_pusher(cfg: TrainConfig, ctx: LoopContext, data_cfg: dict, label_names: list[str]) -> _EpochPush | None:
    """The every_epoch hook on the main process when pushing, else None."""
    if cfg.hub.push_to_hub and cfg.hub.hub_strategy == "every_epoch" and ctx.accelerator.is_main_process:
        return _EpochPush(cfg, ctx, data_cfg, label_names)
    return None


def hardware(accelerator) -> dict:
    """Where the run happened, for the manifest."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"device": str(accelerator.device), "gpu": gpu, "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "mixed_precision": accelerator.mixed_precision}


def run_training(cfg: TrainConfig, accelerator, bundle: DataBundle, out: Path) -> dict:
    """Train, evaluate and write the checkpoint into `out`; return {split: metrics}."""
    start = time.time()
    ctx, data_cfg = build_context(cfg, accelerator, bundle, out)
    if accelerator.is_main_process:
        (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    n = len(bundle.label_names)
    validate = lambda m: quick_metrics(predict(accelerator, m, ctx.loaders.val, ctx.loaders.eval_preprocess), n)  # noqa: E731
    train_start = time.time()
    pusher = epoch_pusher(cfg, ctx, data_cfg, bundle.label_names)
    fit(ctx, validate, pusher)
    if pusher is not None:
        pusher.pusher.wait()
    train_s = time.time() - train_start
    model, preds, results, temperature = final_evaluation(ctx, bundle)
    if accelerator.is_main_process:
        latency = measure_latency(model, tuple(data_cfg["input_size"]), accelerator.device)
        for r in results.values():
            r["metrics"].update(latency)
        primary = primary_split(results)
        sample_ds = bundle.test if primary == "test" else bundle.val
        if ctx.loaders.audio is not None:  # eval/samples/ then shows what the model saw: spectrograms
            from trainer.audio_config import AudioConfig
            from trainer.audio_data import SpectrogramRows

            sample_ds = SpectrogramRows(sample_ds, bundle.image_column, AudioConfig.from_block(ctx.loaders.audio))
        timing = {"train_time_s": round(train_s, 1), "decode_cache": ctx.loaders.decoded,
                  "skipped_files": bundle.skipped}
        run_manifest = manifest(sys.argv, cfg.to_dict(), bundle.source, time.time() - start,
                                {**hardware(accelerator), **timing})
        write_checkpoint(out, model, data_cfg, bundle.label_names, temperature, cfg.to_dict(), results, preds,
                         sample_ds, bundle.image_column, ctx.state.history, run_manifest, audio=ctx.loaders.audio)
        accelerator.print(f"checkpoint written to {out} ({primary} accuracy "
                          f"{results[primary]['metrics']['accuracy']:.4f})", flush=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return {split: r["metrics"] for split, r in results.items()}


def clear_previous(out: Path) -> None:
    """--overwrite-output-dir: drop the old run's state so it is not resumed by mistake."""
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)
