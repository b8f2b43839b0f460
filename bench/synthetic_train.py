"""Our trainer on synthetic tensors: the same CLI, model, optimizer and loop, but every training step gets one
fixed, already-normalised batch instead of the data pipeline (bench_train.py's upper bound for scenario b).

    python bench/synthetic_train.py <the same flags as trainer/train.py>

Validation and test stay real, so the run ends like any other. Only the training loader is swapped, by
replacing trainer.engine.run.build_loaders: a bench-only patch, never used by the trainer itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import trainer.engine.run as pipeline  # noqa: E402
from trainer.data.loaders import build_loaders  # noqa: E402
from trainer.errors import exit_on_user_error  # noqa: E402
from trainer.train import main  # noqa: E402


class FixedBatchLoader:
    """`steps` times the same (x, y, index) batch: timm benchmark.py's synthetic input, in our loader's shape."""

    def __init__(self, steps: int, batch: int, input_size: tuple, num_classes: int, channels_last: bool) -> None:
        g = torch.Generator().manual_seed(0)
        device = "cuda" if torch.cuda.is_available() else "cpu"  # where the trainer's Accelerator puts the model
        x = torch.randn(batch, *input_size, generator=g).to(device)
        self.x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        self.y = torch.randint(0, num_classes, (batch,), generator=g).to(device)
        self.index = torch.arange(batch, device=device)
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            yield self.x, self.y, self.index

    def set_epoch(self, epoch: int) -> None:
        """The loop calls it every epoch; nothing to reseed."""


def synthetic_loaders(cfg, bundle, data_cfg: dict, num_processes: int):
    """The real loaders with the training one replaced by FixedBatchLoader (same number of steps)."""
    loaders = build_loaders(cfg, bundle, data_cfg, num_processes)
    loaders.train = FixedBatchLoader(len(loaders.train), cfg.batch_size, tuple(data_cfg["input_size"]),
                                     len(bundle.label_names), cfg.model.channels_last)
    loaders.train_preprocess = lambda x: x  # already normalised: no crop, flip or normalisation per step
    return loaders


if __name__ == "__main__":
    pipeline.build_loaders = synthetic_loaders
    exit_on_user_error(main)
