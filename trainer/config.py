"""One training config: nested dataclasses (audio front end included), each field with its CLI help (trainer/flags.py
generates the flat flags). The dataclasses are the contract too: config.json's `audio` block is
AudioConfig.to_block()."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainer.errors import UserError, register_secret
from trainer.hardware import usable_cores

SECRET_FIELDS = {"hub_token"}  # never written to disk, logs or trackers
SINGLE_LABEL, MULTI_LABEL = "single_label", "multi_label"  # the task: the data's, and config.json's `task`
DEFAULT_LR = 1e-3  # AdamW's fine-tuning LR for timm backbones at batch 64 (also --lr auto's fallback)


def help_field(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field carrying its CLI help (and argparse extras such as action/metavar) in its metadata."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class DataConfig:
    dataset: str = help_field("fashion-mnist", "Hub dataset id, a local imagefolder dir, or an embedded name "
                              "(fashion-mnist)")
    dataset_config: str | None = help_field(None, "Hub dataset config (subset) name")
    dataset_revision: str | None = help_field(None, "Hub dataset revision (branch, tag or commit)")
    train_split: str = help_field("train", "split to train on")
    val_split: str | None = help_field(None, "validation split; default: 'validation'/'valid'/'val' if present, "
                                       "else --val-pct")
    test_split: str | None = help_field(None, "test split, evaluated once at the end; default: 'test' if present")
    image_column: str | None = help_field(None, "image column; default: the single Image feature")
    audio_column: str | None = help_field(None, "audio column (switches to audio); default: the single Audio feature")
    label_column: str | None = help_field(None, "label column; default: the single ClassLabel or a 'label'-like column")
    group_column: str | None = help_field(None, "also report val/test metrics per value of this column "
                                          "(eval/groups.json, model card), e.g. an accent, site or source column")
    val_pct: float = help_field(0.2, "fraction of train held out (stratified) when there is no validation split")
    max_train_samples: int | None = help_field(None, "cap on training samples (stratified subset), for quick runs")
    max_eval_samples: int | None = help_field(None, "cap on validation and test samples, for quick runs")
    drop_unlabeled: bool = help_field(False, "drop rows whose label is missing (None) or negative (-1: 'no label' "
                                      "in datasets) instead of refusing the dataset")
    multi_label: bool = help_field(False, "several classes per input: the label column holds lists (found by itself "
                                   "for a List feature) or --label-sep separated strings; trains one sigmoid per "
                                   "class (BCE) with per-class thresholds tuned on validation")
    label_sep: str = help_field(",", "--multi-label: the separator of class names in a string label column")
    allow_empty_labels: bool = help_field(False, "--multi-label: keep rows with an empty label list as 'none of the "
                                          "classes' (all-negative targets) instead of refusing them")
    extra_data: list[str] = help_field([], "extra labelled folder DIR/<class>/<file> (the app's --flywheel-dir) "
                                       "added to the "
                               "train split only, after the holdout and --max-train-samples; repeat for more",
                               action="append", metavar="DIR")
    extra_data_pending: bool = help_field(False, "--extra-data of the app's corrections: also train on the ones "
                                          "not reviewed yet (pending/), not only on accepted/")
    decode_cache: Literal["auto", "on", "off"] = help_field(
        "auto", "decode+resize images once into memory (auto: when they fit in 4 GiB and --aa is off)")
    num_workers: int | None = help_field(None, "DataLoader workers per process; default: its share of the CPU cores "
                                         "- 1, "
                                 "at most 8")
    preresize: int | None = help_field(None, "when the decode cache is off: store images with the short side shrunk "
                                       "to this "
                               "many pixels once (datasets cache), e.g. 2 x --img-size for big photos")
    streaming: bool = help_field(False, "stream the train split (datasets IterableDataset, sharded per process, "
                                 "shuffle "
                         "buffer) for data larger than disk; val/test are materialized (capped by --max-eval-samples)")
    shuffle_buffer: int = help_field(10_000, "--streaming: examples held in the shuffle buffer")

    def __post_init__(self) -> None:
        if not 0.0 < self.val_pct < 1.0:
            raise UserError(f"--val-pct must be between 0 and 1 (exclusive), got {self.val_pct}; "
                            "e.g. --val-pct 0.2 holds out 20% of the training split.")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")
        if isinstance(self.extra_data, str):  # `extra_data: dir` in YAML means one folder
            object.__setattr__(self, "extra_data", [self.extra_data])  # frozen: only __post_init__ sets
        if self.num_workers is None:
            object.__setattr__(self, "num_workers", default_workers())
        if self.preresize is not None and self.preresize < 8:
            raise UserError(f"--preresize must be >= 8 pixels, got {self.preresize}.")
        if not self.label_sep:
            raise UserError("--label-sep must be at least one character, e.g. --label-sep ','.")


def default_workers(main_busy: bool = True) -> int:
    """This process's share of the usable cores (LOCAL_WORLD_SIZE processes), less the main one while it trains."""
    share = usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(8, share - 1 if main_busy or share < 2 else share))


@dataclass(frozen=True)
class ModelConfig:
    model: str = help_field("tf_efficientnet_lite0", "any timm model name")
    pretrained: bool = help_field(True, "start from timm's pretrained weights (via the Hub)")
    pretrained_file: str | None = help_field(None, "start from this .safetensors file instead of the Hub")
    img_size: int | None = help_field(None, "square input size; default: the model's pretrained input size")
    crop_pct: float | None = help_field(None, "eval centre-crop fraction; default: the model's (1.0 keeps the whole "
                                        "image)")
    drop_rate: float = help_field(0.0, "dropout before the classifier")
    drop_path_rate: float = help_field(0.0, "stochastic depth rate")
    channels_last: bool = help_field(True, "channels_last memory format (faster convolutions on CPU and GPU)")

    def __post_init__(self) -> None:
        if self.img_size is not None and self.img_size < 8:
            raise UserError(f"--img-size must be >= 8, got {self.img_size}.")
        if self.crop_pct is not None and not 0.1 <= self.crop_pct <= 1.0:
            raise UserError(f"--crop-pct must be within [0.1, 1.0], got {self.crop_pct}.")


@dataclass(frozen=True)
class AugmentConfig:
    scale: list = help_field([0.08, 1.0], "RandomResizedCrop scale range", nargs=2, type=float)
    ratio: list = help_field([0.75, 1.3333333333333333], "RandomResizedCrop aspect-ratio range (1 1: no aspect "
                             "jitter; with --scale 1 1 the crop is off)", nargs=2, type=float)
    hflip: float = help_field(0.5, "horizontal flip probability")
    vflip: float = help_field(0.0, "vertical flip probability")
    color_jitter: float = help_field(0.0, "color jitter strength (PIL path only)")
    aa: str | None = help_field(None, "timm RandAugment/AutoAugment policy, e.g. rand-m9-mstd0.5")
    reprob: float = help_field(0.0, "random erasing probability")
    mixup: float = help_field(0.0, "mixup alpha (0 = off)")
    cutmix: float = help_field(0.0, "cutmix alpha (0 = off)")
    smoothing: float = help_field(0.1, "label smoothing")

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise UserError(f"--scale needs 0 < min <= max <= 1, got {self.scale}.")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise UserError(f"--ratio needs 0 < min <= max, got {self.ratio}.")
        for name in ("hflip", "vflip", "reprob", "smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"--{name} must be within [0, 1], got {getattr(self, name)}.")


def _lr_value(text) -> float | str:
    """--lr: a positive number, or 'auto' (the LR range test picks it)."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except (TypeError, ValueError):
        # argparse reports this as "argument --lr: …"; the value itself is never echoed (it may be a pasted secret)
        raise argparse.ArgumentTypeError("invalid value: a number or auto") from None


@dataclass(frozen=True)
class OptimConfig:
    opt: str = help_field("adamw", "timm optimizer name (create_optimizer_v2)")
    lr: float | str = help_field(DEFAULT_LR, "peak learning rate of the head (and of the backbone times "
                                 "--backbone-lr-scale); 'auto' runs the LR range test first and trains with its "
                                 "suggestion (recorded in train_config.json)", type=_lr_value)
    weight_decay: float = help_field(0.05, "weight decay (not applied to norms, biases and the model's "
                                     "no_weight_decay() tensors such as ViT's pos_embed and cls_token)")
    sched: str = help_field("cosine", "timm scheduler name (create_scheduler_v2)")
    warmup_epochs: float = help_field(1.0, "linear warmup length in epochs (fractions allowed)")
    min_lr: float = help_field(1e-6, "final learning rate of the schedule")
    freeze_epochs: int = help_field(0, "fastai-style fine-tune: train only the head for this many epochs first")
    linear_probe: bool = help_field(False, "first fit the head on frozen features (one forward pass, <= 300 train "
                                    "samples per class), then fine-tune all (LP-FT); the probe is epoch 0's candidate")
    backbone_lr_scale: float = help_field(1.0, "backbone LR = lr x this (e.g. 0.1 for gentle fine-tuning)")
    layer_decay: float | None = help_field(None, "layer-wise LR decay (timm's, as BEiT): each block's LR = lr x "
                                           "this^(blocks above it), the head's x 1; e.g. 0.75 for ViT/ConvNeXt "
                                           "fine-tuning (default: off)")
    clip_grad: float | None = help_field(None, "clip gradient norm to this value")

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "lr", _lr_value(self.lr))  # a YAML config may give it as text
        except argparse.ArgumentTypeError:
            raise UserError("--lr must be a number or auto.") from None
        if self.lr != "auto" and self.lr <= 0:
            raise UserError(f"--lr must be > 0 (or auto), got {self.lr}.")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise UserError(f"--layer-decay must be within (0, 1] (1: every layer at --lr), got {self.layer_decay}; "
                            "e.g. --layer-decay 0.75.")


@dataclass(frozen=True)
class HubConfig:
    push_to_hub: bool = help_field(False, "push the checkpoint (without state/) to the Hugging Face Hub in one commit")
    hub_model_id: str | None = help_field(None, "Hub model repo id, org/name (or name: your user namespace)")
    hub_token: str | None = help_field(None, "Hub token (default: HF_TOKEN or the cached login); never saved")
    hub_private: bool = help_field(False, "create the repo as private (an existing repo keeps its visibility)")
    hub_revision: str | None = help_field(None, "branch to push to (created from main if missing); default: main")
    hub_push_state: bool = help_field(False, "after every epoch, push the training state (safetensors + JSON, no "
                                      "pickles) to --hub-state-branch of --hub-model-id, for --resume hf-hub:…")
    hub_state_branch: str = help_field("training-state", "the branch --hub-push-state pushes to (never main)")
    hub_strategy: Literal["end", "every_epoch"] = help_field(
        "end", "end: one push after training; every_epoch: also push each epoch's model in the background")
    hub_license: str | None = help_field(None, "the model card's licence (a Hub licence id); default: the initial "
                                         "weights' (timm's pretrained_cfg, the packaged Lite0 file's), apache-2.0 "
                                         "for random init; check your data's too")
    create_space: str | None = help_field(None, "also push a Gradio Space repo, org/space-name, serving the pushed "
                                          "model")

    def __post_init__(self) -> None:
        register_secret(self.hub_token)  # scrubbed by value from every stream and file from now on
        for name in ("hub_model_id", "create_space"):
            value = getattr(self, name)
            if value is not None and (value.count("/") > 1 or not all(value.split("/"))):
                raise UserError(f"--{name.replace('_', '-')} {value!r} is not a repo id: use org/name or name.")
        if (self.push_to_hub or self.create_space) and not self.hub_model_id:
            raise UserError("--push-to-hub and --create-space need --hub-model-id org/name (the model repo).")
        if self.create_space and not self.push_to_hub:
            raise UserError("--create-space serves the pushed model: add --push-to-hub.")
        if self.hub_push_state and not self.hub_model_id:
            raise UserError("--hub-push-state needs --hub-model-id org/name (the state goes to a branch of it).")
        if self.hub_state_branch == "main":
            raise UserError("--hub-state-branch main: training state never goes to main (the served model does).")


MAX_SPEC_CELLS = 4 * 1024 * 1024  # mels × frames of one clip's spectrogram (a 2048² image)


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = help_field(16000, "audio: resample every clip to this rate (Hz) before the spectrogram")
    clip_seconds: float = help_field(1.0, "audio: fixed clip length; random crop in training, centre in eval, zero-pad")
    n_mels: int = help_field(64, "audio: mel bands (the spectrogram image height)")
    n_fft: int = help_field(512, "audio: STFT size in samples (Hann window of the same length)")
    hop_length: int = help_field(160, "audio: STFT hop in samples (the spectrogram has clip/hop + 1 columns)")
    f_min: float = help_field(0.0, "audio: lowest mel frequency (Hz)")
    f_max: float | None = help_field(None, "audio: highest mel frequency (Hz); default: sample_rate / 2")
    mel_scale: Literal["slaney", "htk"] = help_field("slaney", "audio: mel scale, as librosa htk=False/True (Slaney "
                                                     "area norm)")
    top_db: float = help_field(80.0, "audio: dB floor below each clip's peak (as librosa.power_to_db top_db)")
    spec_channels: Literal["1", "replicate", "multires"] = help_field(
        "1", "audio: 1 channel (timm in_chans=1), 3 replicated channels, or 3 STFT sizes (n_fft/2, n_fft, 2 n_fft)")
    spec_mean: float | None = help_field(None, "audio: log-mel normalisation mean; default: computed on the train "
                                         "split")
    spec_std: float | None = help_field(None, "audio: log-mel normalisation std; default: computed on the train split")
    window_hop_seconds: float | None = help_field(None, "audio: sliding-window hop for clips longer than "
                                                  "--clip-seconds "
                                                "(app); default: clip_seconds / 2")
    freq_mask: int = help_field(8, "audio SpecAugment: max width of each frequency mask, in mel bands (0 = off)")
    time_mask: int = help_field(12, "audio SpecAugment: max width of each time mask, in frames (0 = off)")
    num_masks: int = help_field(2, "audio SpecAugment: masks of each kind per clip")
    noise_prob: float = help_field(0.5, "audio: probability of adding white noise to a training clip")
    noise_snr: list = help_field([10.0, 40.0], "audio: SNR range (dB) of that noise", nargs=2, type=float)
    gain_db: float = help_field(6.0, "audio: random gain within +- this many dB (0 = off)")
    shift: float = help_field(0.1, "audio: random time shift up to this fraction of the clip, zero-filled (0 = off)")
    speed: float = help_field(0.0, "audio: random speed within 1 +- this per clip, tempo and pitch together (as "
                                   "torchaudio's SpeedPerturbation; 0.1: 0.9x-1.1x; 0 = off)")
    reverb_prob: float = help_field(0.0, "audio: probability of room reverb on a training clip (a synthetic impulse "
                                         "response convolved with torchaudio's fftconvolve; 0 = off)")
    reverb_rt60: list = help_field([0.1, 0.6], "audio: range of the reverb time RT60 (s, a 60 dB decay)", nargs=2,
                                   type=float)
    stats_samples: int = help_field(2000, "audio: train clips used to compute --spec-mean/--spec-std")

    def __post_init__(self) -> None:
        if not 1000 <= self.sample_rate <= 384_000:  # the decoder's own bounds
            raise UserError(f"--sample-rate must be within [1000, 384000] Hz, got {self.sample_rate}.")
        if not 0.05 <= self.clip_seconds <= 60:
            raise UserError(f"--clip-seconds must be within [0.05, 60], got {self.clip_seconds}.")
        if self.n_mels < 8 or self.n_fft < 16 or self.hop_length < 1:
            raise UserError(f"need --n-mels >= 8, --n-fft >= 16, --hop-length >= 1; got {self.n_mels}, "
                            f"{self.n_fft}, {self.hop_length}.")
        if self.n_mels > 512 or self.n_mels * self.frames > MAX_SPEC_CELLS:  # one spectrogram stays a few MB
            raise UserError(f"the spectrogram would be {self.n_mels} mels × {self.frames} frames; keep --n-mels <= "
                            f"512 and mels × frames <= {MAX_SPEC_CELLS:,} (raise --hop-length or shorten the clip).")
        if self.n_fft > self.clip_samples:
            raise UserError(f"--n-fft {self.n_fft} is longer than the clip ({self.clip_samples} samples); lower it "
                            "or raise --clip-seconds.")
        nyquist = self.sample_rate / 2
        if not 0 <= self.f_min < self.fmax <= nyquist:
            raise UserError(f"need 0 <= --f-min < --f-max <= sample_rate/2 ({nyquist:g} Hz); got "
                            f"{self.f_min} and {self.f_max}.")
        if self.spec_std is not None and self.spec_std <= 0:
            raise UserError(f"--spec-std must be > 0, got {self.spec_std}.")
        if self.window_hop_seconds is not None and not 0 < self.window_hop_seconds <= self.clip_seconds:
            raise UserError(f"--window-hop-seconds must be within (0, clip_seconds], got {self.window_hop_seconds}.")
        if not 0 <= self.noise_prob <= 1 or not 0 <= self.shift < 1 or self.gain_db < 0:
            raise UserError("need 0 <= --noise-prob <= 1, 0 <= --shift < 1 and --gain-db >= 0.")
        if not 0 <= self.speed <= 0.5 or not 0 <= self.reverb_prob <= 1:
            raise UserError(f"need 0 <= --speed <= 0.5 and 0 <= --reverb-prob <= 1; got {self.speed} and "
                            f"{self.reverb_prob}.")
        if not 0 < self.reverb_rt60[0] <= self.reverb_rt60[1] <= 2:
            raise UserError(f"--reverb-rt60 needs 0 < min <= max <= 2 seconds, got {self.reverb_rt60}.")

    @property
    def fmax(self) -> float:
        """The highest mel frequency actually used."""
        return float(self.f_max) if self.f_max is not None else self.sample_rate / 2

    @property
    def clip_samples(self) -> int:
        """Samples per fixed-length clip at sample_rate."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        """Spectrogram columns of one clip (centred STFT frames)."""
        return self.clip_samples // self.hop_length + 1

    @property
    def in_chans(self) -> int:
        """Input channels of the model (timm's in_chans)."""
        return 1 if self.spec_channels == "1" else 3

    @property
    def window_hop(self) -> float:
        """Sliding-window hop in seconds for long clips."""
        return self.window_hop_seconds or self.clip_seconds / 2

    def to_block(self) -> dict:
        """Every parameter, as the config.json `audio` block."""
        return dataclasses.asdict(self)

    @classmethod
    def from_block(cls, block: dict) -> AudioConfig:
        """Rebuild from a config.json `audio` block (unknown keys from newer writers are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in block.items() if k in names})


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)  # used when the data has an Audio column
    output_dir: str = help_field("outputs/run", "where the checkpoint, eval/ and state/ go")
    overwrite_output_dir: bool = help_field(False, "replace a previous run in --output-dir instead of refusing")
    epochs: int = help_field(10, "training epochs")
    max_steps: int | None = help_field(None, "stop after this many optimizer steps (overrides --epochs); the LR "
                                       "schedule ends there")
    time_budget: float | None = help_field(
        None, "minutes for the whole command: the steps are planned from the measured speed so that training plus "
        "the final evaluation end within it, with the LR schedule stretched over them (--epochs/--max-steps, when "
        "given, cap the plan); planned vs actual in manifest.json")
    batch_size: int = help_field(64, "per-process training batch size")
    eval_batch_size: int | None = help_field(None, "per-process eval batch size (default: 2 x --batch-size)")
    grad_accum: int = help_field(1, "gradient accumulation steps")
    mixed_precision: Literal["no", "fp16", "bf16"] | None = help_field(
        None, "default: fp16/bf16 from accelerate launch/config, else bf16 on a CUDA GPU that has it, else no")
    torch_compile: bool = help_field(False, "torch.compile the model in place (inductor); the first steps compile")
    model_ema: bool = help_field(False, "keep an EMA of the weights; evaluate and save the EMA")
    model_ema_decay: float = help_field(0.998, "EMA decay per optimizer step")
    balance: Literal["none", "sampler", "loss"] = help_field(
        "none", "class imbalance: weighted sampler or loss (multi-label: loss only, as BCE pos_weight = negatives / "
        "positives per class)")
    metric: Literal["accuracy", "f1_macro", "loss", "map"] = help_field(
        "accuracy", "validation metric for best model/early stop (map: mean average precision, multi-label; "
        "a multi-label run uses it unless another is set)")
    patience: int | None = help_field(None, "early stopping: epochs without improvement of --metric")
    latency_budget_ms: float | None = help_field(None, "single-input p95 latency budget (ms, on the training "
                                                 "device): eval/metrics.json says whether the model meets it")
    tta: Literal["none", "flip", "flip-crops"] = help_field(
        "none", "final evaluation also with test-time augmentation (images): logits averaged over mirrored (and "
        "zoomed) views, reported beside the plain numbers under metrics['tta']")
    folds: int = help_field(0, "stratified K-fold cross-validation on train (0 = off, else >= 2)")
    log_with: str | None = help_field(None, "Accelerate tracker(s), comma-separated: tensorboard, trackio, …")
    log_interval: int = help_field(50, "print the training loss every this many optimizer steps (and log it with "
                                   "the LR to --log-with)")
    tracker_project: str | None = help_field(None, "--log-with project (default: the --dataset's name)")
    run_name: str | None = help_field(None, "--log-with run name (default: the --output-dir folder's name; a --folds "
                                      "run logs one run per fold, <run>-fold<k>)")
    checkpointing_steps: int | None = help_field(
        None, "also save resume state every N optimizer steps (state/step_N): a kill mid-epoch resumes at that step "
        "with the same next batch (streamed data: the same step; the shuffle buffer is refilled)")
    lr_find: bool = help_field(False, "run the LR range test (exponential sweep 1e-7..10, smoothed loss, stop on "
                               "divergence), write lr_find/lr_find.json + .png, print the suggestion and exit")
    lr_find_iters: int = help_field(100, "steps of the LR range test (--lr-find, --lr auto)")
    resume: str | None = help_field(None, "'auto' (latest state in --output-dir) or a state dir")
    seed: int = help_field(42, "random seed (data split, init, augmentation)")
    # the options the user set (CLI or --config), as opposed to defaults: the automatic choices never override them
    explicit: list = field(default_factory=list, metadata={"internal": True})
    # {flag: value as asked} of each option the trainer chose instead (trainer/flags.py with_choices): the request
    # stays readable after the choices, for train_config.json
    requested: dict = field(default_factory=dict, metadata={"internal": True})

    def __post_init__(self) -> None:
        if self.time_budget is not None and not 0 < self.time_budget <= 7 * 24 * 60:
            raise UserError(f"--time-budget is in minutes, within (0, 10080]; got {self.time_budget}.")
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.folds == 1 or self.folds < 0:
            raise UserError(f"--folds must be 0 (off) or >= 2, got {self.folds}.")
        if self.checkpointing_steps is not None and self.checkpointing_steps < 1:
            raise UserError(f"--checkpointing-steps must be >= 1, got {self.checkpointing_steps}.")
        if self.lr_find_iters < 10:
            raise UserError(f"--lr-find-iters must be >= 10 (the suggestion needs a curve), got {self.lr_find_iters}.")
        if self.optim.lr == "auto" and self.folds:
            raise UserError("--lr auto with --folds: run --lr-find once, then pass the suggested --lr to every fold.")

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


SECTIONS_CLASSES = {"data": DataConfig, "model": ModelConfig, "augment": AugmentConfig,
                    "optim": OptimConfig, "hub": HubConfig, "audio": AudioConfig}
