"""Strong defaults for a new dataset on a CPU: what the trainer chooses when the user gives little more than
--dataset, printed with the reason. An option the user set (CLI or --config) is never changed.

On a CPU, when no run length (--epochs, --max-steps) is given: an input size from the data (small images are not
blown up to the model's 224), their whole frame (crop 1.0, gentle RandomResizedCrop), a time budget instead of a
fixed epoch count, and the LR from the range test. Anywhere: the packaged ImageNet weights of the default model at
once when its Hub weights are not cached and the Hub cannot be reached (no minute of retries). timm's train.py and
the transformers examples use fixed defaults (224 px, fixed epochs); AutoTrain and Ultralytics pick some of these
from the data, which is what this follows.
"""

from __future__ import annotations

import math
import socket
from urllib.parse import urlparse

from trainer.config import TrainConfig
from trainer.weights import ARCH

CPU_TIME_BUDGET_MIN = 5.0  # minutes for the whole command when none of --epochs, --max-steps, --time-budget is set
SMALL_IMAGE = 64  # px: images whose median side is at most this are trained at their whole frame
SIZE_SAMPLE = 200  # train images whose header sizes give the median side
SMALL_SCALE = [0.8, 1.0]  # RandomResizedCrop scale for small images: an 8 % crop of a 28 px image is 8 px


def median_side(ds, column: str, n: int = SIZE_SAMPLE) -> int | None:
    """The median of min(width, height) over the first n train images, from their headers (no pixel decode)."""
    import io

    import datasets
    from PIL import Image

    rows = ds.select(range(min(n, len(ds)))).cast_column(column, datasets.Image(decode=False))
    sides = []
    for item in rows[column]:
        try:
            source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
            with Image.open(source) as im:
                sides.append(min(im.size))
        except (OSError, ValueError, TypeError, KeyError):  # unreadable rows are the loader's to report
            continue
    return int(sorted(sides)[len(sides) // 2]) if sides else None


def input_size_for(side: int, model_size: int) -> int:
    """1.5 x the median side rounded up to a multiple of 16, at least 32, at most the model's pretrained size."""
    return int(max(32, min(model_size, 16 * math.ceil(1.5 * side / 16))))


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hub endpoint accepts a TCP connection within `timeout` (False when HF_HUB_OFFLINE is set)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def hub_weights_cached(model: str) -> bool:
    """Whether timm's Hub weights of `model` are in the local Hub cache."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    repo = getattr(timm.get_pretrained_cfg(model), "hf_hub_id", None)
    if not repo:
        return False
    return any(isinstance(try_to_load_from_cache(repo, name), str)
               for name in ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"))


def choose(cfg: TrainConfig, bundle, cuda: bool) -> dict:
    """{flag: (value, reason)} for the options left to the trainer; nothing the user set."""
    explicit, out = set(cfg.explicit), {}
    m = cfg.model
    if m.model == ARCH and m.pretrained and not m.pretrained_file and not hub_weights_cached(ARCH) \
            and not hub_reachable():
        from trainer.weights import convert_lite0, default_lite0_path

        out["pretrained_file"] = (str(convert_lite0(default_lite0_path())),
                                  "the Hub is unreachable and its weights are not cached: the packaged ImageNet "
                                  "weights of the same model")
    if cuda or explicit & {"epochs", "max_steps"}:  # a run length given: the user chose a recipe
        return out
    side = median_side(bundle.train, bundle.input_column) if bundle.modality == "image" else None
    if side is not None and "img_size" not in explicit:
        import timm

        pretrained = timm.get_pretrained_cfg(m.model)
        model_size = pretrained.input_size[-1] if pretrained else 224
        out["img_size"] = (input_size_for(side, model_size), f"median image side {side} px: 1.5x, a multiple of 16, "
                           f"at most the model's {model_size} (a CPU pays for every pixel)")
    if side is not None and side <= SMALL_IMAGE:
        if "crop_pct" not in explicit:
            out["crop_pct"] = (1.0, f"small images (<= {SMALL_IMAGE} px): evaluate the whole frame")
        if "scale" not in explicit:
            out["scale"] = (SMALL_SCALE, "small images: crops of at least 80 % keep the object")
    if "time_budget" not in explicit:
        out["time_budget"] = (CPU_TIME_BUDGET_MIN, "no --epochs, --max-steps or --time-budget on a CPU: the steps "
                                                   "that fit this many minutes, with the schedule stretched to them")
    if "lr" not in explicit and not cfg.folds:
        out["lr"] = ("auto", "no --lr: the LR range test picks it (--lr-find shows the curve)")
    return out


def apply_defaults(cfg: TrainConfig, bundle, accelerator) -> None:
    """Rank 0 chooses (it may convert the packaged weights), every rank applies the same choices; printed."""
    import torch
    from accelerate.utils import broadcast_object_list

    chosen = [choose(cfg, bundle, torch.cuda.is_available()) if accelerator.is_main_process else None]
    chosen = broadcast_object_list(chosen)[0]
    sections = {"pretrained_file": cfg.model, "img_size": cfg.model, "crop_pct": cfg.model, "scale": cfg.augment,
                "lr": cfg.optim, "time_budget": cfg}
    for flag, (value, reason) in chosen.items():
        setattr(sections[flag], flag, value)
        accelerator.print(f"chose --{flag.replace('_', '-')} {value_text(value)}: {reason}", flush=True)
    if chosen:
        accelerator.print("(a flag you pass yourself is always kept as it is)", flush=True)


def value_text(value) -> str:
    """A chosen value as the flag would be written."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
