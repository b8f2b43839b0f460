"""One side of bench_gpu.py: our training loop on uint8 .npy images, with torch + timm + accelerate only.

The data path is the trainer's decode-once path (images resized once into a uint8 TensorImageDataset, batched
gather, pinned non-blocking copies, crop/flip/normalise on the device) and the step is trainer.engine.loop's
train_one_epoch, which prints the `step N … img/s` lines the parent times. --synthetic swaps the data for one
fixed on-device batch (bench/synthetic_train.py's FixedBatchLoader).

    python bench/gpu_worker.py --images x.npy --labels y.npy [trainer flags: --model … --batch-size …]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.synthetic_train import FixedBatchLoader  # noqa: E402
from trainer.data.images import DevicePreprocess, TensorImageDataset, batch_collate  # noqa: E402
from trainer.data.loaders import Loaders  # noqa: E402
from trainer.engine.loop import LoopContext, TrainState, train_one_epoch  # noqa: E402
from trainer.engine.optim import build_optim  # noqa: E402
from trainer.engine.run import make_accelerator  # noqa: E402
from trainer.flags import parse_config  # noqa: E402
from trainer.model import create_model, resolve_data_cfg  # noqa: E402


def load_images(path: str, size: int) -> torch.Tensor:
    """uint8 (N, H, W[, 3]) or (N, 3, H, W) → uint8 (N, 3, size, size), resized once (antialiased bilinear)."""
    x = torch.from_numpy(np.load(path))
    if x.ndim == 3:
        x = x[:, None].expand(-1, 3, -1, -1)
    elif x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    out = torch.empty(len(x), 3, size, size, dtype=torch.uint8)
    for i in range(0, len(x), 4096):  # chunks: a float copy of everything would not fit at 224 px
        chunk = torch.nn.functional.interpolate(x[i:i + 4096].float(), size=(size, size), mode="bilinear",
                                                antialias=True, align_corners=False)
        out[i:i + 4096] = chunk.round().clamp(0, 255).to(torch.uint8)
    return out


def build(args, flags: list[str]) -> LoopContext:
    """Accelerator, model, optimizer and loaders exactly as trainer/engine/run.py builds them."""
    cfg = parse_config(["--no-pretrained", "--epochs", "1", *flags])
    out = Path(tempfile.mkdtemp(prefix="gpu_bench_"))
    acc = make_accelerator(cfg, out)
    labels = torch.from_numpy(np.load(args.labels).astype(np.int64))
    n_classes = int(labels.max()) + 1
    model = create_model(cfg.model, n_classes, [str(i) for i in range(n_classes)])
    data_cfg = resolve_data_cfg(model, cfg.model.img_size, 1.0)
    size = data_cfg["input_size"][-1]
    if args.synthetic:
        train = FixedBatchLoader(cfg.max_steps, cfg.batch_size, tuple(data_cfg["input_size"]), n_classes,
                                 cfg.model.channels_last)
        preprocess = lambda x: x  # noqa: E731 - already normalised
    else:
        ds = TensorImageDataset(load_images(args.images, size), labels)
        train = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                            collate_fn=batch_collate, pin_memory=torch.cuda.is_available())
        preprocess = DevicePreprocess(data_cfg, cfg.augment, cfg.model.channels_last, batch_crop=True)
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler, _ = build_optim(model, cfg, max(1, cfg.max_steps))
    model, optimizer, train = acc.prepare(model, optimizer, train)
    if cfg.torch_compile:
        acc.unwrap_model(model).compile()
    loaders = Loaders(train, None, None, preprocess, preprocess, np.zeros(n_classes), decoded=True)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.augment.smoothing)
    return LoopContext(cfg, acc, model, optimizer, scheduler, loaders, criterion, None, None, TrainState(), 1, out)


def main() -> None:
    """Parse our own two flags, pass the rest to the trainer's config, run one epoch of --max-steps."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--synthetic", action="store_true")
    args, flags = p.parse_known_args()
    ctx = build(args, flags)
    print(f"device {ctx.accelerator.device} precision {ctx.accelerator.mixed_precision} "
          f"compile {ctx.cfg.torch_compile} channels_last {ctx.cfg.model.channels_last}", flush=True)
    train_one_epoch(ctx, 0)


if __name__ == "__main__":
    main()
