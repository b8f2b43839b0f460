"""Grad-CAM: where a timm image model looked when it scored a class, as a heat map over its input.

Grad-CAM (Selvaraju et al. 2017) weights a layer's feature maps by the mean gradient of the class score and keeps
the positive part. The layer comes from timm itself: CNNs list their stages in `feature_info`, and ViT-style
models keep their tokens in `blocks` with the patch grid in `patch_embed.grid_size`. Checked before writing this:
captum's LayerGradCam needs the same layer choice and no token reshape for ViTs, and the `grad-cam` package pulls
opencv, ttach and scipy into the Space; the method itself is ten lines of hooks, here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from trainer.errors import UserError

MIN_CELLS = 4  # a CNN map coarser than 4×4 at the model's input size says little: a finer stage is used then
_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass
class Target:
    """The layer Grad-CAM reads and how its output becomes an (N, C, H, W) map."""

    name: str
    module: torch.nn.Module
    to_map: Callable[[torch.Tensor], torch.Tensor]


def _vit_target(model: torch.nn.Module, input_size: tuple) -> Target | None:
    """The last block's first norm of a ViT-style model, tokens reshaped onto the patch grid (prefix tokens dropped)."""
    embed = getattr(model, "patch_embed", None)
    grid = getattr(embed, "grid_size", None)
    blocks = getattr(model, "blocks", None)
    if grid is None or not isinstance(blocks, torch.nn.Sequential) or not hasattr(blocks[-1], "norm1"):
        return None
    if hasattr(embed, "dynamic_feat_size"):  # a model trained at another --img-size than its default runs dynamic
        grid = embed.dynamic_feat_size(tuple(input_size[-2:]))
    prefix, (gh, gw) = int(getattr(model, "num_prefix_tokens", 0)), grid

    def to_map(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        if patches.shape[1] != gh * gw:
            raise UserError(f"Grad-CAM: {patches.shape[1]} patch tokens do not fill the {gh}×{gw} patch grid "
                            "(a dynamic image size?); explain at the model's own input size.")
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)

    return Target(f"blocks.{len(blocks) - 1}.norm1", blocks[-1].norm1, to_map)


def _cnn_target(model: torch.nn.Module, input_size: tuple) -> Target | None:
    """The deepest `feature_info` stage whose map is at least MIN_CELLS wide at this input size."""
    info = getattr(model, "feature_info", None)
    if not info:
        return None
    stages = [(f["module"], int(f.get("reduction", 1)), f.get("num_chs")) for f in info if f.get("module")]
    fine = [s for s in stages if min(input_size[-2:]) // max(s[1], 1) >= MIN_CELLS]
    name, _, channels = (fine or stages[:1])[-1]

    def to_map(x: torch.Tensor) -> torch.Tensor:
        # some timm stages (MambaOut, …) return channels-last NHWC; feature_info's num_chs tells which axis it is
        if x.dim() == 4 and channels and x.shape[1] != channels and x.shape[-1] == channels:
            return x.permute(0, 3, 1, 2)
        return x

    return Target(name, model.get_submodule(name), to_map)


def target_layer(model: torch.nn.Module, input_size: tuple) -> Target:
    """The layer to explain for a timm model, or a UserError naming what is supported."""
    target = _vit_target(model, input_size) or _cnn_target(model, input_size)
    if target is None:
        arch = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise UserError(f"Grad-CAM does not support {arch}: it needs a CNN with timm feature_info or a ViT-style "
                        "model (blocks + patch_embed.grid_size). Predictions still work; only the explanation is "
                        "unavailable.")
    return target


def _lock(model: torch.nn.Module) -> threading.Lock:
    """One lock per model: hooks on a shared module must see only their own call."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(model), threading.Lock())


def gradcam(model: torch.nn.Module, x: torch.Tensor,
            class_index: int | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """(heat map in [0, 1] at the input's H×W, explained class, logits) for ONE preprocessed input (1, C, H, W).

    class_index None explains the top class. The model is used as it is (eval mode); only this call's forward is
    hooked, so concurrent predictions on the same model are unaffected.
    """
    target = target_layer(model, tuple(x.shape[1:]))
    me, seen = threading.get_ident(), {}

    def hook(_module, _inputs, output):
        if threading.get_ident() == me and torch.is_grad_enabled():
            seen["act"] = output

    with _lock(model), torch.enable_grad():
        handle = target.module.register_forward_hook(hook)
        try:
            logits = model(x.detach().requires_grad_(True))
        finally:
            handle.remove()
        if "act" not in seen:
            raise UserError(f"Grad-CAM: layer {target.name} did not run in the forward pass.")
        cls = int(logits[0].argmax()) if class_index is None else int(class_index)
        # autograd.grad, not backward(): only the activation's gradient is computed, and no .grad lands on the
        # weights of a model that other requests are using
        (grad,) = torch.autograd.grad(logits[0, cls], seen["act"])
        act, grad = target.to_map(seen["act"]), target.to_map(grad)
    if act.dim() != 4:
        raise UserError(f"Grad-CAM: layer {target.name} gives {tuple(act.shape)}, not a feature map; this "
                        "architecture is not supported.")
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * act).sum(1, keepdim=True)).detach().float()
    cam = torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    cam = (cam / peak if peak > 0 else cam).cpu().numpy()
    return cam, cls, logits.detach().float().cpu().numpy()[0]


def shown_input(x: torch.Tensor, mean, std) -> np.ndarray:
    """The preprocessed input (1, 3, H, W), un-normalised back to an RGB uint8 array: what the model saw."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    rgb = (x[0].detach().float().cpu() * s + m).clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def overlay(rgb: np.ndarray, cam: np.ndarray, min_side: int = 224, alpha: float = 0.45):
    """A PIL image: the input (enlarged to at least min_side) under the heat map in matplotlib's 'jet' colours."""
    from matplotlib import colormaps
    from PIL import Image

    h, w = cam.shape
    scale = max(1, int(np.ceil(min_side / max(min(h, w), 1))))
    size = (w * scale, h * scale)
    base = np.asarray(Image.fromarray(rgb).convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    colours = colormaps["jet"](np.asarray(heat, dtype=np.float32) / 255.0)[..., :3] * 255
    return Image.fromarray((base * (1 - alpha) + colours * alpha).clip(0, 255).astype(np.uint8))


def mass_inside(cam: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the heat map's total inside box = (top, left, bottom, right): a check that the map points somewhere."""
    top, left, bottom, right = box
    total = float(cam.sum())
    return float(cam[top:bottom, left:right].sum()) / total if total > 0 else 0.0
