"""Experiment-tracker runs (--log-with): their project and run names, hyper-parameters, start and finish."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from trainer.config import SECRET_FIELDS, TrainConfig
from trainer.errors import UserError, scrub_artifact

# How each Accelerate tracker takes a run name beside the project (accelerate 1.15 tracking.py): init_trackers hands
# every tracker the project name alone; TensorBoard has no run name but its folder (see start_run).
RUN_NAME_KWARG = {"trackio": "name", "wandb": "name", "mlflow": "run_name"}


def project_name(cfg: TrainConfig) -> str:
    """--tracker-project, else the --dataset's last path part (`org/name` → `name`), so runs on one dataset meet."""
    if cfg.tracker_project:
        return _checked(cfg.tracker_project, "--tracker-project")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(cfg.data.dataset.rstrip("/\\")).name).strip("-.") or "train"


def run_name(cfg: TrainConfig) -> str:
    """--run-name, else the --output-dir folder's name (what transformers' run_name defaults to, too)."""
    return _checked(cfg.run_name or Path(cfg.output_dir).resolve().name, "--run-name")


def _checked(name: str, flag: str) -> str:
    if not name.strip(". ") or "/" in name or "\\" in name:
        raise UserError(f"{flag} {name!r}: a tracker name is one folder name (no '/', not empty); choose another.")
    return name


def flat_hparams(cfg: TrainConfig) -> dict:
    """Scalar hyper-parameters for trackers, flat like the flags (secret fields left out, token values scrubbed)."""
    flat = {}
    for key, value in cfg.to_dict().items():
        for k, v in (value.items() if isinstance(value, dict) else [(key, value)]):
            if k not in SECRET_FIELDS:
                flat[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return scrub_artifact(flat)  # a token pasted into another field is scrubbed by value too


def start_run(accelerator, cfg: TrainConfig, name: str | None = None) -> None:
    """Start one tracker run of `cfg` (rank 0): project_name(cfg), run `name` or run_name(cfg), cfg's hparams.

    TensorBoard writes to <logging dir>/<project>/<run>/ (`tensorboard --logdir <out>/logs/<project>` shows the
    runs, e.g. the folds, side by side); Accelerate's init_trackers would put it in <logging dir>/<project>/ for
    every run, so it gets its own TensorBoardTracker. trackio logs run `name` in project `project` (its local
    database is in $TRACKIO_DIR, default $HF_HOME/trackio); --resume continues the run of that name.
    """
    if not cfg.log_with:
        return
    # Accelerate drops a tracker whose package is missing without a word: say so on every rank, before any logging
    missing = sorted(set(cfg.log_with.split(",")) - {str(k) for k in accelerator.log_with} - {"all"})
    if missing:
        raise UserError(f"--log-with {','.join(missing)}: not installed (`pip install {' '.join(missing)}`; "
                        "trackio is the [trackio] extra), or drop it from --log-with.")
    if not accelerator.is_main_process:
        return
    from accelerate.tracking import TensorBoardTracker

    project, name = project_name(cfg), name or run_name(cfg)
    kinds = list(accelerator.log_with)
    tb_dir = Path(accelerator.logging_dir) / project
    if cfg.overwrite_output_dir and not cfg.resume:  # the replaced run's curves must not overlay the new ones
        shutil.rmtree(tb_dir / name, ignore_errors=True)
    init_kwargs = {kind: {arg: name} for kind, arg in RUN_NAME_KWARG.items()}
    init_kwargs["trackio"]["resume"] = "allow" if cfg.resume else "never"
    # init_trackers starts tracker instances found in log_with as they are (Accelerate's custom-tracker path)
    accelerator.log_with = [TensorBoardTracker(name, tb_dir) if str(k) == "tensorboard" else k for k in kinds]
    try:
        accelerator.init_trackers(project, config=flat_hparams(cfg), init_kwargs=init_kwargs)
    finally:
        accelerator.log_with = kinds


def finish_run(accelerator) -> None:
    """Finish the open tracker run (each tracker once) and forget it: later logs go to the next start_run only.

    Not accelerator.end_training(): that also ends the process group, which the folds after this one still need.
    """
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers.clear()


def log_final(accelerator, results: dict, step: int) -> None:
    """The final evaluation's scalar metrics, once: final_<split>_<metric> (the epoch rows' val_* are per epoch)."""
    row = {f"final_{split}_{k}": v for split, metrics in results.items() for k, v in metrics.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    accelerator.log(row, step=step)
