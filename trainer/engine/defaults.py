"""Strong defaults for a new dataset on a CPU: what the trainer chooses when the user gives little more than
--dataset, printed with the reason. An option the user set (CLI or --config) is never changed.

On a CPU, when no run length (--epochs, --max-steps) is given: a time budget instead of a fixed epoch count, an
input size from the data and the budget (small images are not blown up to the model's 224; large photos get the
largest size at which the budget buys a fine-tuning epoch, from the model's speed measured here), their whole frame
for small images (crop 1.0, gentle RandomResizedCrop), the head fitted on frozen features first (--linear-probe:
seconds instead of minutes for most of the accuracy), and the LR from the range test. Anywhere: the packaged
ImageNet weights of the default model at once when its Hub weights are not cached and the Hub cannot be reached (no
minute of retries). timm's train.py and the transformers examples use fixed defaults (224 px, fixed epochs);
AutoTrain and Ultralytics pick some of these from the data, which is what this follows.
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
HINTS = "_hints"  # choose()'s key for what it measured on the way (the time budget's hints), not a flag
MIN_EPOCHS = 1.0  # the input size is the largest at which the budget buys this many fine-tuning epochs
SIZE_STEP = 32  # candidate input sizes: multiples of this between LARGE_FLOOR (large photos) and the median rule
LARGE_FLOOR = 96  # px: photos are not shrunk below this to fit a budget (ImageNet features fade below it)
SPEED_BATCH = 16  # images per timed step of the model's speed measurement


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


def model_speed(cfg: TrainConfig, num_classes: int, size: int) -> dict:
    """Seconds per image of a training step and of an evaluation forward of the run's model at `size` px on this
    machine: SPEED_BATCH random uint8 images through the training device's preprocessing (batched crop, flip,
    normalisation) and the model with random weights (the same cost), timed after a warm-up step. A batch of 64
    costs ~1/4 more per image than one of 16 on a CPU (caches); the pacer then plans from the real steps."""
    import time

    import timm
    import torch

    from trainer.data.images import DevicePreprocess

    model = timm.create_model(cfg.model.model, pretrained=False, num_classes=num_classes)
    model = model.to(memory_format=torch.channels_last) if cfg.model.channels_last else model
    stats = {"mean": model.pretrained_cfg.get("mean", (0.5,) * 3), "std": model.pretrained_cfg.get("std", (0.5,) * 3)}
    train = DevicePreprocess(stats, cfg.augment, cfg.model.channels_last, batch_crop=True)
    x = torch.randint(0, 256, (SPEED_BATCH, 3, size, size), dtype=torch.uint8)
    y = torch.arange(SPEED_BATCH) % num_classes
    optimizer = torch.optim.AdamW(model.parameters())
    times = []
    for _ in range(3):  # the first is the warm-up
        started = time.perf_counter()
        torch.nn.functional.cross_entropy(model(train(x)), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    model.eval()
    evaluate = DevicePreprocess(stats, None, cfg.model.channels_last, batch_crop=False)
    with torch.no_grad():
        model(evaluate(x))
        started = time.perf_counter()
        model(evaluate(x))
        forward = time.perf_counter() - started
    return {"train_s": min(times[1:]) / SPEED_BATCH, "eval_s": forward / SPEED_BATCH}


def size_for_budget(cfg: TrainConfig, bundle, largest: int, minutes: float, elapsed_s: float) -> tuple:
    """(size, reason, seconds per training image at that size): the largest candidate input size (<= `largest`)
    at which `minutes` buy MIN_EPOCHS of fine-tuning after the linear probe, the LR choice, the final evaluation and
    what was spent already. The speed is measured at `largest` and scaled by the pixel count for smaller sizes
    (convolutions cost about that; the pacer then times the real steps)."""
    from trainer.engine.budget import LR_FIND_SHARE
    from trainer.engine.linear_probe import LP_PER_CLASS

    n = len(bundle.label_names)
    n_train, n_val = len(bundle.train), len(bundle.val)
    n_final = n_val + (len(bundle.test) if bundle.test is not None else 0)
    floor = min(largest, LARGE_FLOOR) if largest > 2 * LARGE_FLOOR else 32
    sizes = sorted({largest, *range(SIZE_STEP * math.ceil(floor / SIZE_STEP), largest, SIZE_STEP)}, reverse=True)
    speed = model_speed(cfg, n, largest)
    left = (minutes * 60 - elapsed_s) * (1 - LR_FIND_SHARE)
    for size in sizes:
        scale = (size / largest) ** 2
        train_s, eval_s = speed["train_s"] * scale, speed["eval_s"] * scale
        fixed = (min(n_train, LP_PER_CLASS * n) + n_val + n_final) * eval_s  # linear probe + final evaluation
        epoch = n_train * train_s + n_val * eval_s
        epochs = (left - fixed) / epoch
        if epochs >= MIN_EPOCHS or size == sizes[-1]:
            which = (f"the largest size that buys {MIN_EPOCHS:g}" if epochs >= MIN_EPOCHS else
                     f"the smallest size tried: none buys {MIN_EPOCHS:g} (a longer --time-budget trains more)")
            return size, (f"~{epoch:.0f} s per fine-tuning epoch at {size} px here (the model's step measured at "
                          f"{largest} px): {minutes:g} minutes buy {max(0.0, epochs):.1f} after the linear probe, "
                          f"{which}"), train_s
    raise AssertionError("unreachable: the last size always returns")


def choose(cfg: TrainConfig, bundle, cuda: bool, elapsed_s: float = 0.0) -> dict:
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
    if "time_budget" not in explicit:
        out["time_budget"] = (CPU_TIME_BUDGET_MIN, "no --epochs, --max-steps or --time-budget on a CPU: the steps "
                                                   "that fit this many minutes, with the schedule stretched to them")
    minutes = cfg.time_budget if "time_budget" in explicit else CPU_TIME_BUDGET_MIN
    side = median_side(bundle.train, bundle.input_column) if bundle.modality == "image" else None
    if side is not None and "img_size" not in explicit:
        import timm

        pretrained = timm.get_pretrained_cfg(m.model)
        model_size = pretrained.input_size[-1] if pretrained else 224
        largest = input_size_for(side, model_size)
        reason = f"median image side {side} px: 1.5x, a multiple of 16, at most the model's {model_size}"
        try:
            size, why, train_s = size_for_budget(cfg, bundle, largest, minutes, elapsed_s)
        except (OSError, RuntimeError, ValueError) as e:  # e.g. an hf-hub: model whose config is not reachable
            out["img_size"] = (largest, f"{reason} (its speed could not be measured here: {type(e).__name__})")
        else:
            out["img_size"] = (size, f"{reason} is {largest}; {why}")
            out[HINTS] = {"train_step_s": train_s * cfg.batch_size * cfg.grad_accum}
    if side is not None and side <= SMALL_IMAGE:
        if "crop_pct" not in explicit:
            out["crop_pct"] = (1.0, f"small images (<= {SMALL_IMAGE} px): evaluate the whole frame")
        if "scale" not in explicit:
            out["scale"] = (SMALL_SCALE, "small images: crops of at least 80 % keep the object")
    if "linear_probe" not in explicit and (m.pretrained or m.pretrained_file or "pretrained_file" in out):
        out["linear_probe"] = (True, "pretrained weights: fit the head on their frozen features first (one forward "
                                     "pass, seconds), then fine-tune everything")
    if "lr" not in explicit and not cfg.folds:
        out["lr"] = ("auto", "no --lr: the LR range test picks it (--lr-find shows the curve)")
    return out


def apply_defaults(cfg: TrainConfig, bundle, accelerator, budget=None) -> TrainConfig:
    """The config with the options left open chosen (rank 0 chooses, it may convert the packaged weights; every rank
    gets the same choices); printed. budget: the command's clock (a chosen input size fits the rest of the budget;
    what was measured on the way becomes its hints)."""
    import torch
    from accelerate.utils import broadcast_object_list

    from trainer.flags import with_choices

    elapsed_s = budget.elapsed() if budget is not None else 0.0
    chosen = [choose(cfg, bundle, torch.cuda.is_available(), elapsed_s) if accelerator.is_main_process else None]
    chosen = broadcast_object_list(chosen)[0]
    hints = chosen.pop(HINTS, {})
    if budget is not None:
        budget.hints.update(hints)
    for flag, (value, reason) in chosen.items():
        accelerator.print(f"chose --{flag.replace('_', '-')} {value_text(value)}: {reason}", flush=True)
    if chosen:
        accelerator.print("(a flag you pass yourself is always kept as it is)", flush=True)
    return with_choices(cfg, {flag: value for flag, (value, _) in chosen.items()})


def value_text(value) -> str:
    """A chosen value as the flag would be written."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
