"""Stratified K-fold cross-validation (multi-label: iterative stratification): one checkpoint per fold, a
mean ± std summary, best fold served."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainer.checkpoint.card import write_card
from trainer.checkpoint.contract import FOLDS_DIR, SERVED_FILES, STAGING_DIR
from trainer.checkpoint.write import install, write_json
from trainer.config import MULTI_LABEL, TrainConfig
from trainer.data.bundle import DataBundle
from trainer.data.extra import split_off_extra
from trainer.data.multilabel import label_matrix, multilabel_folds
from trainer.data.splits import label_array
from trainer.engine.trackers import run_name, start_run
from trainer.flags import with_choices


def summarize(per_fold: list[dict]) -> dict:
    """{split: {metric: {mean, std, values}}} over folds, for every numeric metric."""
    summary: dict = {}
    for split in per_fold[0]:
        keys = [k for k, v in per_fold[0][split].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        summary[split] = {k: {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "values": vals}
                          for k in keys for vals in [[float(f[split][k]) for f in per_fold]]}
    return summary


def run_folds(cfg: TrainConfig, accelerator, bundle: DataBundle, out: Path, run_one: Callable) -> dict:
    """Train K folds of train+val (seed-fixed, stratified); copy the best fold by val --metric into out."""
    import datasets
    from sklearn.model_selection import StratifiedKFold

    base, extra = split_off_extra(bundle.train, bundle.source)  # --extra-data rows train in every fold, never val
    pool = datasets.concatenate_datasets([base, bundle.val])
    if bundle.task == MULTI_LABEL:  # iterative stratification: every class keeps its share of positives
        folds = multilabel_folds(label_matrix(pool, bundle.label_column, len(bundle.label_names)), cfg.folds,
                                 cfg.seed)
    else:
        labels = label_array(pool, bundle.label_column)
        folds = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed).split(labels, labels)
    per_fold = []
    for k, (train_idx, val_idx) in enumerate(folds):
        accelerator.print(f"fold {k + 1}/{cfg.folds}: {len(train_idx)} train / {len(val_idx)} val", flush=True)
        fold_dir = out / FOLDS_DIR / str(k)
        fold_cfg = with_choices(cfg, {"output_dir": str(fold_dir),  # train_config.json keeps the asked dir
                                      "run_name": f"{run_name(cfg)}-fold{k}"})
        start_run(accelerator, fold_cfg)  # one tracker run per fold (k as in folds/<k>/), finished by run_one
        train = pool.select(train_idx)
        train = datasets.concatenate_datasets([train, extra]) if extra is not None else train
        fold_bundle = dataclasses.replace(bundle, train=train, val=pool.select(val_idx))
        per_fold.append(run_one(fold_cfg, accelerator, fold_bundle, fold_dir))
        accelerator.free_memory()
    sign = -1 if cfg.metric == "loss" else 1
    best = int(np.argmax([sign * f["val"][cfg.metric] for f in per_fold]))
    summary = {"folds": cfg.folds, "metric": cfg.metric, "best_fold": best, "summary": summarize(per_fold)}
    if accelerator.is_main_process:
        write_json(out / FOLDS_DIR / "summary.json", summary)
        staging = out / STAGING_DIR  # the served model: the best fold, installed as one set like any checkpoint
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in SERVED_FILES:
            src = out / FOLDS_DIR / str(best) / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, staging / name)
        install(staging, out)
        write_card(out)  # the card describes the served (best) fold, under out's name
    accelerator.wait_for_everyone()
    return summary
