"""Fine-tune a timm model: `python trainer/train.py …` or `accelerate launch trainer/train.py …`."""

from __future__ import annotations

from trainer.config import MULTI_LABEL, SINGLE_LABEL, TrainConfig
from trainer.engine.trackers import flat_hparams as _flat_hparams  # noqa: F401 - the name tests/test_secrets.py checks
from trainer.errors import exit_on_user_error
from trainer.flags import parse_config


def main(argv: list[str] | None = None) -> dict:
    """Parse flags → load data → train (or K folds) → evaluate → write the checkpoint, every phase on one clock."""
    import psutil  # an Accelerate dependency

    start = psutil.Process().create_time()  # --time-budget counts the whole command: imports and data loading too
    # imported here, not at the top: --help and flag errors answer before torch, datasets and accelerate load
    from accelerate.utils import set_seed

    from trainer.engine.budget import Budget
    from trainer.engine.run import check_output_dir, clear_previous, make_accelerator

    cfg: TrainConfig = parse_config(argv)
    out = check_output_dir(cfg, cfg.overwrite_output_dir)
    accelerator = make_accelerator(cfg, out)
    if cfg.hub.push_to_hub and accelerator.is_main_process:
        from trainer.hub.push import check_access

        check_access(cfg.hub.hub_model_id, cfg.hub.hub_token)  # a bad token fails now, not after training
    set_seed(cfg.seed)
    budget = Budget(None, start=start)  # the command's clock; the seconds once --time-budget is known
    with budget.phase("data"):
        bundle = load_data(cfg, accelerator)
    cfg = fit_task(cfg, bundle, accelerator.print)
    if not cfg.data.streaming and accelerator.is_main_process:
        with budget.phase("preflight"):
            bundle.preflight = quick_preflight(bundle, accelerator.print)
    accelerator.print(f"data: {bundle.source['sizes']} samples, {len(bundle.label_names)} classes, "
                      f"columns input={bundle.input_column!r} label={bundle.label_column!r}", flush=True)
    if not cfg.data.streaming:  # what the user left open: chosen from the data and the hardware, and printed
        from trainer.engine.defaults import apply_defaults

        with budget.phase("data"):
            cfg = apply_defaults(cfg, bundle, accelerator, budget)
    if cfg.log_with and not cfg.folds:  # a --folds run starts one tracker run per fold (trainer/engine/folds.py)
        from trainer.engine.trackers import start_run

        start_run(accelerator, cfg)
    if cfg.overwrite_output_dir and not cfg.resume and accelerator.is_main_process:
        clear_previous(out)
    if cfg.lr_find:  # the LR range test's curve alone (trainer/engine/lr_find.py)
        from trainer.engine.run import lr_find_only

        return lr_find_only(cfg, accelerator, bundle, out)
    if cfg.time_budget is not None:  # K folds share the budget: each takes an equal part of what is left
        budget.seconds, budget.parts_left = cfg.time_budget * 60, cfg.folds or 1
    result = train_within_budget(cfg, accelerator, bundle, out, budget)
    if cfg.hub.push_to_hub and accelerator.is_main_process:
        from trainer.hub.publish import publish

        publish(cfg.hub, out)
    if budget.seconds is not None:  # planned vs measured, per phase (manifest.json has it up to its own writing)
        for line in budget.table():
            accelerator.print(line, flush=True)
    accelerator.end_training()  # once, at the end: each tracker run was finished with its training run
    return result


def train_within_budget(cfg: TrainConfig, accelerator, bundle, out, budget) -> dict:
    """One run or K folds, on the command's clock and within its --time-budget when set; --lr auto is the LR range
    test on the run's own loaders (trainer/engine/run.py)."""
    import functools

    from trainer.engine.folds import run_folds
    from trainer.engine.run import run_training

    train_one = functools.partial(run_training, budget=budget)
    return run_folds(cfg, accelerator, bundle, out, train_one) if cfg.folds else train_one(cfg, accelerator, bundle,
                                                                                           out)


def load_data(cfg: TrainConfig, accelerator):
    """The DataBundle of the run (rank 0 builds dataset caches, the others reuse them), checked against the options
    that depend on it."""
    from trainer.data.bundle import build_data
    from trainer.data.splits import check_classes

    with accelerator.main_process_first():
        if cfg.data.streaming:
            from trainer.data.streaming import build_stream_data

            bundle = build_stream_data(cfg)
        else:
            bundle = build_data(cfg.data, cfg.seed)
            if bundle.task == SINGLE_LABEL:  # multi-label encoding checks its classes itself
                check_classes(bundle.train, bundle.label_column, bundle.label_names)
    if cfg.tta != "none" and bundle.modality == "audio":
        from trainer.errors import UserError
        from trainer.evaluation.tta import AUDIO_REFUSAL

        raise UserError(AUDIO_REFUSAL)
    return bundle


def fit_task(cfg: TrainConfig, bundle, say) -> TrainConfig:
    """The config fitted to the task: --metric map needs multi-label data, and a multi-label run keeps the best
    epoch by mAP unless --metric was given."""
    from trainer.errors import UserError
    from trainer.flags import with_choices

    if bundle.task == MULTI_LABEL:
        say(f"multi-label data: {len(bundle.label_names)} classes, one sigmoid each (BCE); thresholds are tuned "
            "on validation", flush=True)
        if "metric" not in cfg.explicit:
            say("chose --metric map: multi-label data (mean average precision over the classes)", flush=True)
            return with_choices(cfg, {"metric": "map"})
    elif cfg.metric == "map":
        raise UserError(f"--metric map is for multi-label data; the label column {bundle.label_column!r} holds one "
                        "class per row. Use accuracy, f1_macro or loss, or --multi-label for lists of classes.")
    return cfg


def quick_preflight(bundle, say) -> dict:
    """The quick data preflight (counts, sizes, exact duplicates, leakage), printed; eval/preflight.json keeps it."""
    import time

    from trainer.data.audit import preflight, summary_lines

    start = time.perf_counter()
    report = preflight(bundle)
    report["seconds"] = round(time.perf_counter() - start, 1)
    lines = summary_lines(report)
    say(f"preflight ({report['seconds']} s; `python trainer/preflight.py` with --near-duplicates checks more):",
        flush=True)
    for line in lines:
        say(f"  {line}", flush=True)
    return report


def cli() -> None:
    """The `timm-space-train` console script."""
    exit_on_user_error(main)


if __name__ == "__main__":
    cli()
