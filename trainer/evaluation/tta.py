"""Test-time augmentation for image models: the logits averaged over flipped (and zoomed) views of each input.

timm has no TTA wrapper for classification (checked: timm.data and timm.models offer test-time pooling only), so
this is the small module: views are made on the normalised batch, on the device, after the usual preprocessing.
"""

from __future__ import annotations

import torch

TTA_MODES = ("none", "flip", "flip-crops")
NUM_VIEWS = {"none": 1, "flip": 2, "flip-crops": 4}
ZOOM = 0.875  # flip-crops: also a centre crop of 87.5 % of each side, resized back (timm's default crop_pct)


def views(x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views of an NCHW batch: itself and its mirror; with flip-crops also both zoomed in."""
    out = [x, torch.flip(x, dims=[3])]
    if mode == "flip-crops":
        h, w = x.shape[-2:]
        ch, cw = max(1, round(h * ZOOM)), max(1, round(w * ZOOM))
        top, left = (h - ch) // 2, (w - cw) // 2
        zoomed = torch.nn.functional.interpolate(x[..., top:top + ch, left:left + cw], size=(h, w),
                                                 mode="bilinear", align_corners=False)
        out += [zoomed, torch.flip(zoomed, dims=[3])]
    return out


AUDIO_REFUSAL = ("--tta mirrors and zooms images; on a spectrogram a mirror reverses time. Use --tta none for an "
                 "audio checkpoint.")


class TTA(torch.nn.Module):
    """`model` whose forward returns the mean logits over the views of `mode` (without the unchanged input itself
    when `with_plain` is False: for a caller that already has its logits, see `with_plain_logits`)."""

    def __init__(self, model: torch.nn.Module, mode: str, with_plain: bool = True) -> None:
        super().__init__()
        self.model, self.mode, self.first = model, mode, 0 if with_plain else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.model(v) for v in views(x, self.mode)[self.first:]]).mean(0)


def with_plain_logits(plain, others, mode: str):
    """The TTA mean over every view of `mode` from the plain input's logits and the mean of the other views' (a
    TTA(with_plain=False) pass): the plain pass an evaluation already made is not run twice."""
    return (plain + (NUM_VIEWS[mode] - 1) * others) / NUM_VIEWS[mode]
