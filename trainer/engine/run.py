"""One training run wired together: accelerator, model, loaders, loop, final evaluation, checkpoint."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed

from trainer.checkpoint.card import licence_warning
from trainer.checkpoint.contract import (
    MANIFEST,
    MULTI_LABEL,
    SNAPSHOT_DIR,
    STATE_DIR,
    TRAIN_CONFIG,
    primary_split,
)
from trainer.checkpoint.write import manifest, save_model_files, write_checkpoint, write_json
from trainer.config import DEFAULT_LR, AudioConfig, TrainConfig
from trainer.data.bundle import DataBundle
from trainer.data.loaders import build_audio_loaders, build_loaders
from trainer.data.streaming import build_stream_loaders
from trainer.data.waves import SpectrogramRows
from trainer.engine.budget import LR_FIND_MIN_ITERS, LR_FIND_TIMING_STEPS, Budget, Pacer, take_plan
from trainer.engine.loop import LoopContext, TrainState, find_resume, fit
from trainer.engine.optim import build_loss, build_optim
from trainer.engine.trackers import finish_run, log_final
from trainer.errors import UserError
from trainer.evaluation.decision import fit_decision, score_split
from trainer.evaluation.ood import JOINT, SCORE, SCORES, fit_ood
from trainer.evaluation.predict import measure_latency, predict
from trainer.evaluation.report import group_metrics, quick_metrics
from trainer.evaluation.tta import NUM_VIEWS, TTA
from trainer.flags import request_dict, resolved_dict, with_choices
from trainer.hardware import usable_cores
from trainer.hub.push import EpochPusher
from trainer.model import create_model, resolve_data_cfg, set_pretrained_cfg

KNOWN_GOOD_LR = DEFAULT_LR  # --lr auto when the range test cannot fit the budget: the default fine-tuning LR


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
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=cfg.log_with.split(",") if cfg.log_with else None,  # several trackers: tensorboard,trackio
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
    previous = (out / MANIFEST).exists() or (out / STATE_DIR).exists()
    if previous and not cfg.resume and not overwrite:
        raise UserError(f"--output-dir {out} holds a previous run. Use --resume auto to continue it, "
                        "--overwrite-output-dir to replace it, or choose another --output-dir.")
    return out


def build_model_and_loaders(cfg: TrainConfig, accelerator, bundle: DataBundle) -> tuple:
    """(timm model, Loaders, data config) of a run, not yet prepared by Accelerate."""
    audio = bundle.modality == "audio"
    model = create_model(cfg.model, len(bundle.label_names), bundle.label_names,
                         in_chans=cfg.audio.in_chans if audio else 3)
    if warning := licence_warning(model.pretrained_cfg, cfg.model, cfg.hub.hub_license):
        accelerator.print(warning)
    if audio:  # the front end fixes the input size; its normalisation statistics come from the train split

        loaders, data_cfg = build_audio_loaders(cfg, bundle, accelerator.num_processes, accelerator.print)
    else:
        data_cfg = resolve_data_cfg(model, cfg.model.img_size, cfg.model.crop_pct)
        if cfg.data.streaming:
            loaders = build_stream_loaders(cfg, bundle, data_cfg, accelerator)
        else:
            # rank 0 writes the --preresize cache first; the other ranks then read it instead of racing to write it
            with accelerator.main_process_first() if cfg.data.preresize else contextlib.nullcontext():
                loaders = build_loaders(cfg, bundle, data_cfg, accelerator.num_processes)
    set_pretrained_cfg(model, data_cfg)
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, loaders, data_cfg


def find_lr(cfg: TrainConfig, accelerator, model, loaders, out: Path, budget: Budget | None = None) -> dict:
    """--lr-find / --lr auto: the LR range test on a copy of `model` with its own optimizer and a prepared copy of
    the train loader (freed afterwards, so the run starts from untouched weights and Accelerate's saved state
    holds only the real run); lr_find/ on rank 0. Within --time-budget the sweep gets a bounded share of the time
    left (trainer.engine.budget): fewer steps, or none and a known-good LR (`{"skipped": reason}`)."""
    import copy

    from timm.optim import create_optimizer_v2

    from trainer.engine import lr_find
    from trainer.engine.optim import param_groups

    model = copy.deepcopy(model)
    criterion, _ = build_loss(cfg, loaders, len(loaders.class_counts))
    optimizer = create_optimizer_v2(param_groups(model, cfg.optim.weight_decay, cfg.optim.layer_decay),
                                    opt=cfg.optim.opt, lr=lr_find.START_LR)
    model, optimizer, train = accelerator.prepare(model, optimizer, loaders.train)
    criterion = criterion.to(accelerator.device)
    num_iter = cfg.lr_find_iters
    if budget is not None and budget.seconds is not None:
        step_s = budget.hints.get("train_step_s")  # measured at this size already: no timing steps when too slow
        if step_s is None or step_s * LR_FIND_MIN_ITERS <= budget.lr_find_share():
            step_s = lr_find.time_steps(accelerator, model, optimizer, train, loaders.train_preprocess, criterion,
                                        LR_FIND_TIMING_STEPS)
        num_iter = budget.lr_find_iters(cfg.lr_find_iters, step_s)
    if num_iter:
        lrs, losses = lr_find.sweep(accelerator, model, optimizer, train, loaders.train_preprocess, criterion, num_iter)
    accelerator.free_memory(model, optimizer, train)  # drop Accelerate's references: save_state must not see them
    set_seed(cfg.seed)  # the real run draws the same random numbers as it would without the range test
    if not num_iter:
        return {"skipped": f"{LR_FIND_MIN_ITERS} sweep steps of {step_s:.2f} s would take more than its share of "
                           f"the time left"}
    try:
        found = lr_find.suggest(lrs, losses)
    except ValueError as e:
        raise UserError(f"LR range test: {e}. Check the loss on a short run, or pass --lr explicitly.") from None
    found["num_iter"] = len(lrs)
    if accelerator.is_main_process:
        folder = lr_find.save(out, lrs, losses, found)
        accelerator.print(f"\nlr_find: suggested lr {found['suggestion']:.2e} (the loss is lowest at "
                          f"{found['min_loss_lr']:.2e}, a tenth of it; steepest descent {found['steepest']:.2e}, "
                          f"valley {found['valley']:.2e}) over {len(lrs)} steps; curve in {folder}", flush=True)
    accelerator.wait_for_everyone()
    return found


def lr_find_only(cfg: TrainConfig, accelerator, bundle: DataBundle, out: Path) -> dict:
    """--lr-find: the range test's curve and suggestion, no training."""
    model, loaders, _ = build_model_and_loaders(cfg, accelerator, bundle)
    found = find_lr(cfg, accelerator, model, loaders, out)
    accelerator.end_training()
    return found


def choose_lr(cfg: TrainConfig, accelerator, model, loaders, out: Path, budget: Budget) -> TrainConfig:
    """--lr auto: the config with the range test's suggestion, or the known-good default when the test cannot fit
    the budget; said."""
    with budget.phase("lr_choice"):
        found = find_lr(cfg, accelerator, model, loaders, out, budget)
    if "skipped" in found:
        budget.choose(f"no LR range test: {found['skipped']}; --lr {KNOWN_GOOD_LR:g}, the default fine-tuning LR "
                      "(for AdamW)", accelerator.print)
        return with_choices(cfg, {"lr": KNOWN_GOOD_LR})
    if budget.seconds is not None:
        budget.choose(f"LR range test of {found['num_iter']} steps in {budget.measured['lr_choice']:.1f} s "
                      f"(its share: {budget.planned['lr_choice']:.1f} s): --lr {found['suggestion']:.2e}",
                      accelerator.print)
    return with_choices(cfg, {"lr": found["suggestion"]})  # resolved_config.json records the LR actually used


def make_pacer(cfg: TrainConfig, budget: Budget, loaders, num_processes: int, steps: int, device) -> Pacer:
    """The --time-budget pacer of this run (or fold, `steps` optimizer steps per epoch and process): its deadline,
    what it evaluates, the user's caps."""
    n_val = len(loaders.val.dataset)
    n_final = n_val + (len(loaders.test.dataset) if loaders.test is not None else 0)
    cap = cfg.max_steps if "max_steps" in cfg.explicit else \
        cfg.epochs * steps if "epochs" in cfg.explicit else None
    views = NUM_VIEWS[cfg.tta] if cfg.tta != "none" else 1  # the plain pass is one of the TTA views
    return Pacer(budget.next_deadline(), {"val": -(-n_val // num_processes), "final": -(-n_final // num_processes)},
                 cfg.batch_size * cfg.grad_accum, cfg.grad_accum, eval_views=views, cap_steps=cap,
                 warmup_epochs=cfg.optim.warmup_epochs if "warmup_epochs" in cfg.explicit else None,
                 default_warmup=cfg.optim.warmup_epochs, budget=budget, device=str(device))


def build_context(cfg: TrainConfig, accelerator, bundle: DataBundle, out: Path,
                  budget: Budget) -> tuple[LoopContext, dict]:
    """Model, data config, loaders (the decode cache) and optimizer, all prepared by Accelerate, after the LR
    choice (--lr auto) on the same loaders; resumes when asked."""
    with budget.phase("decode_cache"):
        model, loaders, data_cfg = build_model_and_loaders(cfg, accelerator, bundle)
    probe = None
    if cfg.optim.linear_probe and not resuming(cfg, out):  # a resumed run has its head already
        from trainer.engine.linear_probe import linear_probe

        probe = linear_probe(cfg, accelerator, model, loaders, budget)
    if cfg.optim.lr == "auto":
        cfg = choose_lr(cfg, accelerator, model, loaders, out, budget)
    per_process = len(loaders.train) if loaders.sharded else len(loaders.train) // accelerator.num_processes
    steps = max(1, per_process // cfg.grad_accum)
    pacer = None
    if budget.seconds is not None:
        pacer = make_pacer(cfg, budget, loaders, accelerator.num_processes, steps, accelerator.device)
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
                      epochs, out, steps_per_epoch=steps, pacer=pacer, probe=probe)
    if cfg.hub.hub_push_state and accelerator.num_processes > 1:
        raise UserError("--hub-push-state carries one process's RNG state: run it with one process for now.")
    if cfg.resume and cfg.resume.startswith("hf-hub:"):
        resume_from_hub(cfg, accelerator, ctx)
    else:
        resume = find_resume(out, cfg.resume)
        if resume is not None:
            accelerator.load_state(str(resume))
            within = f", {state.batches_done} batches into epoch {state.epoch + 2}" if state.batches_done else ""
            accelerator.print(f"resumed from {resume} (epoch {state.epoch + 1} done, step {state.step}{within})",
                              flush=True)
        elif cfg.resume:
            accelerator.print(f"--resume {cfg.resume}: no saved state in {out / STATE_DIR}, starting fresh",
                              flush=True)
    if state.plan is not None:  # a resumed --time-budget run keeps its schedule until it has measured and planned
        take_plan(ctx, state.plan)
    return ctx, data_cfg


def resuming(cfg: TrainConfig, out: Path) -> bool:
    """Whether this run continues a saved state (--resume from the Hub, or a state dir that exists)."""
    return bool(cfg.resume) and (cfg.resume.startswith("hf-hub:") or find_resume(out, cfg.resume) is not None)


def resume_from_hub(cfg: TrainConfig, accelerator, ctx: LoopContext) -> None:
    """--resume hf-hub:org/name[@branch]: the pickle-free state pushed by --hub-push-state, into this run."""
    from trainer.engine import portable_state
    from trainer.hub.state import pull_state

    if accelerator.num_processes > 1:
        raise UserError("--resume hf-hub:… restores one process's RNG state: run it with one process for now.")
    folder = pull_state(cfg.resume, cfg.hub.hub_token, portable_state.FILES)
    loaded = portable_state.load(folder, accelerator.unwrap_model(ctx.model), ctx.optimizer, ctx.ema)
    ctx.state.load_state_dict(loaded)
    if (folder / "best_model.safetensors").is_file():  # a fresh output dir: the best weights so far come along
        (ctx.out / STATE_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / "best_model.safetensors", ctx.out / STATE_DIR / "best_model.safetensors")
    accelerator.print(f"resumed from {cfg.resume} (epoch {ctx.state.epoch + 1} done, step {ctx.state.step})",
                      flush=True)


def load_best(ctx: LoopContext) -> torch.nn.Module:
    """The best-by-metric weights, loaded into the evaluated (EMA or plain) model."""
    from safetensors.torch import load_file

    model = ctx.accelerator.unwrap_model(ctx.eval_model)
    path = ctx.out / STATE_DIR / "best_model.safetensors"
    if path.exists():
        model.load_state_dict(load_file(str(path)))  # load_state_dict copies onto the model's device
    return model


def final_evaluation(ctx: LoopContext, bundle: DataBundle) -> tuple:
    """Best model → predict val (+ test, once); fit the temperature (multi-label: calibration and thresholds) and
    the OOD threshold on val; full metrics for every split."""
    accelerator, n = ctx.accelerator, len(bundle.label_names)
    multi = bundle.task == MULTI_LABEL
    model = load_best(ctx)
    preds = {"val": predict(accelerator, model, ctx.loaders.val, ctx.loaders.eval_preprocess)}
    if ctx.loaders.test is not None:
        preds["test"] = predict(accelerator, model, ctx.loaders.test, ctx.loaders.eval_preprocess)
    decision = fit_decision(preds["val"], multi)
    # the threshold beyond which the app says "not one of the known classes"
    ood = fit_ood(preds["val"]["logits"], score=JOINT if multi else SCORE)
    results = {}
    if ctx.cfg.tta != "none":  # reported beside the plain numbers (metrics["tta"]), never instead of them
        tta = {split: {"mode": ctx.cfg.tta, **tta_metrics(ctx, model, split, preds[split], n)} for split in preds}
    column = ctx.cfg.data.group_column
    for split, p in preds.items():
        results[split] = score_split(p, n, decision)
        results[split]["metrics"]["ood_flagged"] = float(np.mean(SCORES[ood["score"]](p["logits"]) > ood["threshold"]))
        if ctx.cfg.tta != "none":
            results[split]["metrics"]["tta"] = tta[split]
        if column:  # --group-column: the same numbers per value (e.g. per held-out accent)
            ds = bundle.test if split == "test" else bundle.val
            results[split]["groups"] = {"column": column, "groups": group_metrics(p, ds[column], n)}
    return model, preds, results, (decision, ood)


def tta_metrics(ctx: LoopContext, model, split: str, plain: dict, n: int) -> dict:
    """--tta: the quick metrics of a split over the views of the mode; the plain view is the pass already made."""
    from trainer.evaluation.tta import with_plain_logits

    loader = ctx.loaders.val if split == "val" else ctx.loaders.test
    others = predict(ctx.accelerator, TTA(model, ctx.cfg.tta, with_plain=False), loader, ctx.loaders.eval_preprocess)
    return quick_metrics({**others, "logits": with_plain_logits(plain["logits"], others["logits"], ctx.cfg.tta)}, n)


def latency_input(ctx: LoopContext, bundle: DataBundle, data_cfg: dict):
    """What a latency run prepares per call: timm's eval transform of a decoded val image (what the app does), or
    the log-mel front end of one decoded val clip."""
    if ctx.loaders.audio is None:
        from trainer.data.images import eval_transform, to_rgb

        image, transform = to_rgb(bundle.val[0][bundle.input_column]), eval_transform(data_cfg)
        return lambda: transform(image)[None]
    # one row through the loader's own collate, not next(iter(loader)): only this process runs it, and iterating
    # a prepared loader synchronises RNG state across processes
    loader = ctx.loaders.val
    waves, lengths = loader.collate_fn([loader.dataset[0]])[0]  # (padded waves, lengths), as the loop gets them
    device = ctx.accelerator.device
    return lambda: ctx.loaders.eval_preprocess((waves.to(device), lengths.to(device)))


def write_snapshot(ctx: LoopContext, data_cfg: dict, label_names: list[str], snap: Path) -> None:
    """An every-epoch snapshot: the model files (the final checkpoint's writer), train_config.json and history."""
    model = ctx.accelerator.unwrap_model(ctx.eval_model)
    task = {"task": MULTI_LABEL} if ctx.loaders.multi_label else None  # thresholds come with the final checkpoint
    save_model_files(model, snap, data_cfg, label_names, audio=ctx.loaders.audio, decision=task)
    write_json(snap / TRAIN_CONFIG, request_dict(ctx.cfg))
    write_json(snap / "history.json", ctx.state.history)


def chosen_options(cfg: TrainConfig) -> dict:
    """manifest.json `chosen`: each option the trainer set in place of the request, {flag: {requested, value}}
    (the reasons are printed; a --time-budget run's plan and its measured costs are in `time_budget`)."""
    flat = {k: v for section in resolved_dict(cfg).values() if isinstance(section, dict) for k, v in section.items()}
    flat.update({k: v for k, v in resolved_dict(cfg).items() if not isinstance(v, dict)})
    return {flag: {"requested": asked, "value": flat[flag]} for flag, asked in sorted(cfg.requested.items())}


def hardware(accelerator) -> dict:
    """Where the run happened, for the manifest."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"device": str(accelerator.device), "gpu": gpu, "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type), "cpu_count": os.cpu_count(),
            "usable_cores": usable_cores(),
            "torch_threads": torch.get_num_threads(), "mixed_precision": accelerator.mixed_precision}


def run_training(cfg: TrainConfig, accelerator, bundle: DataBundle, out: Path, budget: Budget) -> dict:
    """Train, evaluate and write the checkpoint into `out` (each phase timed by `budget`, the clock of the command
    and its --time-budget); return {split: metrics}."""
    start = time.time()
    ctx, data_cfg = build_context(cfg, accelerator, bundle, out, budget)
    cfg = ctx.cfg  # the LR chosen on the way (--lr auto) is in the run's own config
    if accelerator.is_main_process:
        (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    if ctx.probe is not None:  # the probed model: epoch 0's candidate, which fine-tuning must beat on validation
        keep_probe(ctx)
    n = len(bundle.label_names)

    def validate(model: torch.nn.Module) -> dict:
        started = time.perf_counter()
        pred = predict(accelerator, model, ctx.loaders.val, ctx.loaders.eval_preprocess)
        ctx.val_pass_s = time.perf_counter() - started  # the time budget's evaluation cost per sample
        return quick_metrics(pred, n)

    pusher = None  # --hub-strategy every_epoch: the main process pushes each epoch's model in the background
    if cfg.hub.push_to_hub and cfg.hub.hub_strategy == "every_epoch" and accelerator.is_main_process:
        pusher = EpochPusher(cfg.hub, out / SNAPSHOT_DIR, cfg.metric,
                             functools.partial(write_snapshot, ctx, data_cfg, bundle.label_names))
    with budget.phase("training"):
        fit(ctx, validate, pusher)
        if pusher is not None:
            pusher.wait()
    train_s = budget.measured["training"]
    with budget.phase("final_evaluation"):
        model, preds, results, (decision, ood) = final_evaluation(ctx, bundle)
    with budget.phase("writing"):
        weights = accelerator.get_state_dict(ctx.eval_model)  # on every rank: a collective under FSDP / ZeRO-3
        if accelerator.is_main_process:
            timing = {"train_time_s": round(train_s, 1), "decode_cache": ctx.loaders.decoded,
                      "skipped_files": bundle.skipped}
            run_manifest = manifest(sys.argv, resolved_dict(ctx.cfg), bundle.source, time.time() - start,
                                    {**hardware(accelerator), **timing}, chosen=chosen_options(ctx.cfg))
            write_run(ctx, bundle, data_cfg, model, (preds, results, decision, ood), run_manifest, weights, budget)
    accelerator.wait_for_everyone()
    metrics = {split: r["metrics"] for split, r in results.items()}
    log_final(accelerator, metrics, ctx.state.step)  # rank 0's metrics hold the latency too (write_run)
    finish_run(accelerator)  # this run's (or fold's) tracker run; train.py ends the process group once, at the end
    return metrics


def keep_probe(ctx: LoopContext) -> None:
    """The linear-probed model as the best so far (history row "epoch 0", best epoch 0)."""
    from trainer.engine.loop import save_best

    metrics, st = ctx.probe["metrics"], ctx.state
    st.best, st.best_epoch = metrics[ctx.cfg.metric], -1
    save_best(ctx.accelerator, ctx.eval_model, ctx.out)
    st.history.append({"epoch": 0, "step": 0, "linear_probe": True, "train_rows": ctx.probe["rows"],
                       **{f"val_{k}": v for k, v in metrics.items()}})


def write_run(ctx: LoopContext, bundle: DataBundle, data_cfg: dict, model, evaluated: tuple, run_manifest: dict,
              weights: dict, budget: Budget) -> None:
    """Rank 0: latency, then the checkpoint files (manifest.json with the time budget's table as measured up to
    it), and the lines that close the run."""
    cfg, accelerator, out = ctx.cfg, ctx.accelerator, ctx.out
    preds, results, decision, ood = evaluated
    latency = measure_latency(model, latency_input(ctx, bundle, data_cfg), accelerator.device)
    if cfg.latency_budget_ms is not None:  # a satisficing metric: met or missed, beside the optimised one
        latency.update(latency_budget_ms=cfg.latency_budget_ms,
                       within_latency_budget=latency["latency_ms_p95_batch1"] <= cfg.latency_budget_ms)
        accelerator.print(f"latency p95 {latency['latency_ms_p95_batch1']:.1f} ms: "
                          f"{'within' if latency['within_latency_budget'] else 'OVER'} the "
                          f"{cfg.latency_budget_ms:g} ms budget", flush=True)
    for r in results.values():
        r["metrics"].update(latency)
    primary = primary_split(results)
    sample_ds = bundle.test if primary == "test" else bundle.val
    if ctx.loaders.audio is not None:  # eval/samples/ then shows what the model saw: spectrograms
        sample_ds = SpectrogramRows(sample_ds, bundle.input_column, AudioConfig.from_block(ctx.loaders.audio))
    # planned vs measured per phase, up to the manifest (the very end is printed once the files are in place)
    on_manifest = (lambda: {"time_budget": budget.report()}) if budget.seconds is not None else None
    write_checkpoint(out, model, data_cfg, bundle.label_names, decision, (request_dict(cfg), resolved_dict(cfg)),
                     results, preds,
                     sample_ds, bundle.input_column, ctx.state.history, run_manifest, audio=ctx.loaders.audio,
                     preflight=bundle.preflight, state_dict=weights, ood=ood, on_manifest=on_manifest)
    m = results[primary]["metrics"]
    score = f"mAP {m['map']:.4f}, micro F1 {m['f1_micro']:.4f}, subset accuracy" if "map" in m else "accuracy"
    accelerator.print(f"checkpoint written to {out} ({primary} {score} {m['accuracy']:.4f})", flush=True)
    for split, r in results.items():
        for value, m in r.get("groups", {}).get("groups", {}).items():
            accelerator.print(f"  {split} {cfg.data.group_column}={value}: accuracy {m['accuracy']:.4f} "
                              f"({m['num_samples']} samples)", flush=True)


def clear_previous(out: Path) -> None:
    """--overwrite-output-dir: drop the old run's state so it is not resumed by mistake."""
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)
