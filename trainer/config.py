"""One training config: nested dataclasses, flat CLI flags generated from their fields, YAML overlay."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainer.audio_config import AudioConfig
from trainer.errors import UserError
from trainer.fields import help_field as _f

SECRET_FIELDS = {"hub_token"}  # never written to disk, logs or trackers


@dataclass
class DataConfig:
    dataset: str = _f("fashion-mnist", "Hub dataset id, a local imagefolder dir, or an embedded name (fashion-mnist)")
    dataset_config: str | None = _f(None, "Hub dataset config (subset) name")
    dataset_revision: str | None = _f(None, "Hub dataset revision (branch, tag or commit)")
    train_split: str = _f("train", "split to train on")
    val_split: str | None = _f(None, "validation split; default: 'validation'/'valid'/'val' if present, else --val-pct")
    test_split: str | None = _f(None, "test split, evaluated once at the end; default: 'test' if present")
    image_column: str | None = _f(None, "image column; default: the single Image feature")
    audio_column: str | None = _f(None, "audio column (switches to audio); default: the single Audio feature")
    label_column: str | None = _f(None, "label column; default: the single ClassLabel or a 'label'-like column")
    val_pct: float = _f(0.2, "fraction of train held out (stratified) when there is no validation split")
    max_train_samples: int | None = _f(None, "cap on training samples (stratified subset), for quick runs")
    max_eval_samples: int | None = _f(None, "cap on validation and test samples, for quick runs")
    extra_data: list[str] = _f([], "extra labelled folder DIR/<class>/<file> (the app's --flywheel-dir) added to the "
                               "train split only, after the holdout and --max-train-samples; repeat for more",
                               action="append", metavar="DIR")
    decode_cache: Literal["auto", "on", "off"] = _f(
        "auto", "decode+resize images once into memory (auto: when they fit in 4 GiB and --aa is off)")
    num_workers: int | None = _f(None, "DataLoader workers per process; default: its share of the CPU cores - 1, "
                                 "at most 8")
    preresize: int | None = _f(None, "when the decode cache is off: store images with the short side shrunk to this "
                               "many pixels once (datasets cache), e.g. 2 x --img-size for big photos")
    streaming: bool = _f(False, "stream the train split (datasets IterableDataset, sharded per process, shuffle "
                         "buffer) for data larger than disk; val/test are materialized (capped by --max-eval-samples)")
    shuffle_buffer: int = _f(10_000, "--streaming: examples held in the shuffle buffer")

    def __post_init__(self) -> None:
        if not 0.0 < self.val_pct < 1.0:
            raise UserError(f"--val-pct must be between 0 and 1 (exclusive), got {self.val_pct}; "
                            "e.g. --val-pct 0.2 holds out 20% of the training split.")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")
        if isinstance(self.extra_data, str):  # `extra_data: dir` in YAML means one folder
            self.extra_data = [self.extra_data]
        if self.num_workers is None:
            self.num_workers = default_workers()
        if self.preresize is not None and self.preresize < 8:
            raise UserError(f"--preresize must be >= 8 pixels, got {self.preresize}.")


def default_workers() -> int:
    """This process's share of the usable cores (torchrun/accelerate set LOCAL_WORLD_SIZE) minus the main one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")) - 1))


@dataclass
class ModelConfig:
    model: str = _f("tf_efficientnet_lite0", "any timm model name")
    pretrained: bool = _f(True, "start from timm's pretrained weights (via the Hub)")
    pretrained_file: str | None = _f(None, "start from this .safetensors file instead of the Hub")
    img_size: int | None = _f(None, "square input size; default: the model's pretrained input size")
    crop_pct: float | None = _f(None, "eval centre-crop fraction; default: the model's (1.0 keeps the whole image)")
    drop_rate: float = _f(0.0, "dropout before the classifier")
    drop_path_rate: float = _f(0.0, "stochastic depth rate")
    channels_last: bool = _f(True, "channels_last memory format (faster convolutions on CPU and GPU)")

    def __post_init__(self) -> None:
        if self.img_size is not None and self.img_size < 8:
            raise UserError(f"--img-size must be >= 8, got {self.img_size}.")
        if self.crop_pct is not None and not 0.1 <= self.crop_pct <= 1.0:
            raise UserError(f"--crop-pct must be within [0.1, 1.0], got {self.crop_pct}.")


@dataclass
class AugmentConfig:
    scale: list = _f([0.08, 1.0], "RandomResizedCrop scale range", nargs=2, type=float)
    hflip: float = _f(0.5, "horizontal flip probability")
    vflip: float = _f(0.0, "vertical flip probability")
    color_jitter: float = _f(0.0, "color jitter strength (PIL path only)")
    aa: str | None = _f(None, "timm RandAugment/AutoAugment policy, e.g. rand-m9-mstd0.5")
    reprob: float = _f(0.0, "random erasing probability")
    mixup: float = _f(0.0, "mixup alpha (0 = off)")
    cutmix: float = _f(0.0, "cutmix alpha (0 = off)")
    smoothing: float = _f(0.1, "label smoothing")

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise UserError(f"--scale needs 0 < min <= max <= 1, got {self.scale}.")
        for name in ("hflip", "vflip", "reprob", "smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"--{name} must be within [0, 1], got {getattr(self, name)}.")


@dataclass
class OptimConfig:
    opt: str = _f("adamw", "timm optimizer name (create_optimizer_v2)")
    lr: float = _f(1e-3, "peak learning rate of the head (and of the backbone times --backbone-lr-scale)")
    weight_decay: float = _f(0.05, "weight decay (not applied to norms and biases)")
    sched: str = _f("cosine", "timm scheduler name (create_scheduler_v2)")
    warmup_epochs: float = _f(1.0, "linear warmup length in epochs (fractions allowed)")
    min_lr: float = _f(1e-6, "final learning rate of the schedule")
    freeze_epochs: int = _f(0, "fastai-style fine-tune: train only the head for this many epochs first")
    backbone_lr_scale: float = _f(1.0, "backbone LR = lr x this (e.g. 0.1 for gentle fine-tuning)")
    clip_grad: float | None = _f(None, "clip gradient norm to this value")

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise UserError(f"--lr must be > 0, got {self.lr}.")


@dataclass
class HubConfig:
    push_to_hub: bool = _f(False, "push the checkpoint (without state/) to the Hugging Face Hub in one commit")
    hub_model_id: str | None = _f(None, "Hub model repo id, org/name (or name: your user namespace)")
    hub_token: str | None = _f(None, "Hub token (default: HF_TOKEN or the cached login); never saved")
    hub_private: bool = _f(False, "create the repo as private (an existing repo keeps its visibility)")
    hub_revision: str | None = _f(None, "branch to push to (created from main if missing); default: main")
    hub_strategy: Literal["end", "every_epoch"] = _f(
        "end", "end: one push after training; every_epoch: also push each epoch's model in the background")
    hub_license: str | None = _f("apache-2.0", "license in the model card (check your data's and weights')")
    create_space: str | None = _f(None, "also push a Gradio Space repo, org/space-name, serving the pushed model")

    def __post_init__(self) -> None:
        for name in ("hub_model_id", "create_space"):
            value = getattr(self, name)
            if value is not None and (value.count("/") > 1 or not all(value.split("/"))):
                raise UserError(f"--{name.replace('_', '-')} {value!r} is not a repo id: use org/name or name.")
        if (self.push_to_hub or self.create_space) and not self.hub_model_id:
            raise UserError("--push-to-hub and --create-space need --hub-model-id org/name (the model repo).")
        if self.create_space and not self.push_to_hub:
            raise UserError("--create-space serves the pushed model: add --push-to-hub.")


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)  # used when the data has an Audio column
    output_dir: str = _f("outputs/run", "where the checkpoint, eval/ and state/ go")
    overwrite_output_dir: bool = _f(False, "replace a previous run in --output-dir instead of refusing")
    epochs: int = _f(10, "training epochs")
    max_steps: int | None = _f(None, "stop after this many optimizer steps (overrides --epochs)")
    batch_size: int = _f(64, "per-process training batch size")
    eval_batch_size: int | None = _f(None, "per-process eval batch size (default: 2 x --batch-size)")
    grad_accum: int = _f(1, "gradient accumulation steps")
    mixed_precision: Literal["no", "fp16", "bf16"] | None = _f(
        None, "default: fp16/bf16 from accelerate launch/config, else bf16 on a CUDA GPU that has it, else no")
    torch_compile: bool = _f(False, "torch.compile the model in place (inductor); the first steps compile")
    model_ema: bool = _f(False, "keep an EMA of the weights; evaluate and save the EMA")
    model_ema_decay: float = _f(0.998, "EMA decay per optimizer step")
    balance: Literal["none", "sampler", "loss"] = _f("none", "class imbalance: weighted sampler or loss")
    metric: Literal["accuracy", "f1_macro", "loss"] = _f("accuracy", "validation metric for best model/early stop")
    patience: int | None = _f(None, "early stopping: epochs without improvement of --metric")
    folds: int = _f(0, "stratified K-fold cross-validation on train (0 = off, else >= 2)")
    log_with: str | None = _f(None, "Accelerate tracker, e.g. tensorboard")
    log_interval: int = _f(50, "print the training loss every this many optimizer steps")
    resume: str | None = _f(None, "'auto' (latest state in --output-dir) or a state dir")
    seed: int = _f(42, "random seed (data split, init, augmentation)")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.folds == 1 or self.folds < 0:
            raise UserError(f"--folds must be 0 (off) or >= 2, got {self.folds}.")

    def to_dict(self, redact: bool = True) -> dict:
        """Nested dict of the config; secrets removed unless redact=False."""
        d = dataclasses.asdict(self)
        if redact:
            for section in d.values():
                if isinstance(section, dict):
                    for key in SECRET_FIELDS & section.keys():
                        section[key] = None
        return d

    def save(self, path: Path) -> None:
        """Write the resolved config (secrets never written) as JSON, atomically."""
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)


def _flag_fields() -> list[tuple[str | None, dataclasses.Field, Any]]:
    """Every leaf field as (section or None, field, resolved type)."""
    out = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in SECTIONS_CLASSES:
            cls = SECTIONS_CLASSES[f.name]
            hints = typing.get_type_hints(cls)
            out += [(f.name, sub, hints[sub.name]) for sub in dataclasses.fields(cls)]
        else:
            out.append((None, f, typing.get_type_hints(TrainConfig)[f.name]))
    return out


SECTIONS_CLASSES = {"data": DataConfig, "model": ModelConfig, "augment": AugmentConfig,
                    "optim": OptimConfig, "hub": HubConfig, "audio": AudioConfig}


def _add_flag(parser: argparse.ArgumentParser, f: dataclasses.Field, tp: Any) -> None:
    """One flat --flag for a field, typed from its annotation."""
    flag = "--" + f.name.replace("_", "-")
    meta = dict(f.metadata)
    kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": meta.pop("help", "")}
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in args if a is not type(None))
        args = typing.get_args(tp)
    if tp is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        return
    if typing.get_origin(tp) is Literal:
        kw["choices"], tp = list(args), str
    kw["type"] = meta.pop("type", tp if tp in (int, float) else str)
    parser.add_argument(flag, **kw, **meta)


def build_parser() -> argparse.ArgumentParser:
    """Flat CLI flags generated from the config dataclasses."""
    parser = argparse.ArgumentParser(
        prog="trainer/train.py", description="Fine-tune a timm model on a datasets source.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="YAML file of options (flat or nested keys); CLI flags override it")
    for _, f, tp in _flag_fields():
        _add_flag(parser, f, tp)
    return parser


def _flatten(d: dict) -> dict:
    """Accept nested ({data: {dataset: x}}) or flat YAML keys; dashes or underscores."""
    flat: dict = {}
    for key, value in d.items():
        key = key.replace("-", "_")
        if key in SECTIONS_CLASSES and isinstance(value, dict):
            flat.update(_flatten(value))
        else:
            flat[key] = value
    return flat


def _from_flat(flat: dict) -> TrainConfig:
    """Build the nested config from flat keys, rejecting unknown ones by name."""
    known = {f.name: section for section, f, _ in _flag_fields()}
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise UserError(f"unknown option(s) {unknown}; see `python trainer/train.py --help` for the list.")
    sections: dict[str, dict] = {name: {} for name in SECTIONS_CLASSES}
    top: dict = {}
    for key, value in flat.items():
        (sections[known[key]] if known[key] else top)[key] = value
    try:
        return TrainConfig(**{name: SECTIONS_CLASSES[name](**vals) for name, vals in sections.items()}, **top)
    except TypeError as e:
        raise UserError(f"bad option value: {e}") from None


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Defaults < --config YAML < explicit CLI flags."""
    args = vars(build_parser().parse_args(argv))
    flat: dict = {}
    yaml_path = args.pop("config", None)
    if yaml_path:
        import yaml

        try:
            loaded = yaml.safe_load(Path(yaml_path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise UserError(f"cannot read --config {yaml_path}: {e}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"--config {yaml_path} must hold a mapping of option: value.")
        flat.update(_flatten(loaded))
    flat.update(args)
    return _from_flat(flat)


def load_train_config(path: Path) -> TrainConfig:
    """Read a saved train_config.json back into a TrainConfig."""
    return _from_flat(_flatten(json.loads(Path(path).read_text())))
