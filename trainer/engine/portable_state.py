"""Training state without pickles: what `--resume` needs, as safetensors (tensors) and JSON (everything else), so
that state fetched from somewhere else (e.g. a Hub branch) can be loaded without running anyone's code.

Accelerate's save_state writes the optimizer with torch.save and the RNG states and registered objects as pickles;
loading those from another machine or a Hub repo would unpickle files someone else controls. Checked before writing
this: safetensors stores tensors only, and torch.distributed.checkpoint writes its own pickled metadata; so the
optimizer state is split into its tensors (safetensors) and its plain values (JSON), and the RNG states are
stored as tensors (torch) and lists (Python, NumPy).

Files: model.safetensors, ema.safetensors (with --model-ema), optimizer.safetensors + optimizer.json, rng.safetensors
+ rng.json, train_state.json (step, epoch, position in the epoch, history). Single process: a multi-process run
keeps one RNG state per rank, which this format does not carry (yet).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from trainer.checkpoint.write import write_json

FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors", "rng.json",
         "train_state.json")
EMA_FILE = "ema.safetensors"
FORMAT = 1  # bump when the layout changes; load() refuses a newer one


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors via temp file + rename (contiguous CPU copies: safetensors refuses strided views)."""
    from safetensors.torch import save_file

    tmp = Path(f"{path}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer state_dict as (tensors named state.<param>.<key>, the rest as JSON-able values)."""
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    """The inverse of split_optimizer: an optimizer state_dict for load_state_dict."""
    state: dict = {int(i): dict(values) for i, values in plain["state"].items()}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """(torch and CUDA generator states as tensors, Python and NumPy states as JSON-able lists)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return tensors, {"python": [version, list(internal), gauss],
                     "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict) -> None:
    """Restore what rng_state() captured (CUDA states only where this machine has as many GPUs)."""
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def save(folder: Path, model: torch.nn.Module, optimizer, train_state: dict,
         ema: torch.nn.Module | None = None) -> Path:
    """Write the portable state of a run into folder (each file atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_tensors(folder / "model.safetensors", model.state_dict())
    if ema is not None:
        _save_tensors(folder / EMA_FILE, ema.state_dict())
    tensors, plain = split_optimizer(optimizer.state_dict())
    _save_tensors(folder / "optimizer.safetensors", tensors)
    write_json(folder / "optimizer.json", plain)
    tensors, plain = rng_state()
    _save_tensors(folder / "rng.safetensors", tensors)
    write_json(folder / "rng.json", plain)
    write_json(folder / "train_state.json", {"format": FORMAT, **train_state})
    return folder


def load(folder: Path, model: torch.nn.Module, optimizer, ema: torch.nn.Module | None = None) -> dict:
    """Load a portable state into model/optimizer (/ema) and the RNGs; returns the train state (step, epoch, …)."""
    from safetensors.torch import load_file

    train_state = json.loads((folder / "train_state.json").read_text())
    if train_state.pop("format", None) != FORMAT:
        raise ValueError(f"{folder}: portable state format {train_state.get('format')!r}, this code reads {FORMAT}")
    device = next(model.parameters()).device
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    if ema is not None and (folder / EMA_FILE).is_file():
        ema.load_state_dict(load_file(str(folder / EMA_FILE), device=str(device)))
    optimizer.load_state_dict(join_optimizer(load_file(str(folder / "optimizer.safetensors"), device=str(device)),
                                             json.loads((folder / "optimizer.json").read_text())))
    set_rng_state(load_file(str(folder / "rng.safetensors")), json.loads((folder / "rng.json").read_text()))
    return train_state
