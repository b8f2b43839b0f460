"""Image transforms: timm's train/eval transforms (uint8 out), the decode-once cache, and on-device steps.

Every path yields uint8 CHW tensors; normalisation, batched crop/flip and random erasing run on the
training device (timm's prefetcher does the same on GPU), so the 2 CPU cores are not spent twice.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import torch

from trainer.config import AugmentConfig
from trainer.errors import UserError

CACHE_AUTO_LIMIT = 4 * 2**30  # bytes of decoded uint8 pixels that 'auto' keeps in memory


# Past this aspect ratio an image is a strip, not a photo (phone panoramas stay within ~10:1). timm's transforms
# resize the short side first: an 8 × 8,000,000 px strip (a few hundred KiB of PNG) would become 64 × 64,000,000 px,
# ~21 GiB, for a 64 px model. A longer side is cut, centred, to MAX_ASPECT × the short side before anything else:
# the eval centre crop keeps the middle short × short square anyway, and images within the ratio are untouched (so
# their logits stay exactly what they were).
MAX_ASPECT = 20


def bound_aspect(image) -> "PIL.Image.Image":  # noqa: F821 - PIL imported lazily by callers
    """`image` with its long side at most MAX_ASPECT × its short side: a longer one cut to its centre."""
    w, h = image.size
    keep = MAX_ASPECT * max(1, min(w, h))
    if max(w, h) <= keep:
        return image
    if w > h:
        return image.crop(((w - keep) // 2, 0, (w - keep) // 2 + keep, h))
    return image.crop((0, (h - keep) // 2, w, (h - keep) // 2 + keep))


def to_rgb(image) -> "PIL.Image.Image":  # noqa: F821 - PIL imported lazily by callers
    """Any PIL mode (L, P, RGBA, CMYK, I;16) → RGB (grayscale replicated to 3 channels), cut to at most MAX_ASPECT:1
    first (bound_aspect): the one conversion of training, evaluation and the app."""
    image = bound_aspect(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np
        from PIL import Image

        arr = np.asarray(image, dtype=np.float32)
        scale = 255.0 / max(float(arr.max()), 1.0)  # 16-bit → 8-bit keeps the contrast
        image = Image.fromarray((arr * scale).clip(0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        from PIL import Image

        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def eval_transform(data_cfg: dict, uint8: bool = False) -> Callable:
    """timm's eval transform from a data config (as stored in config.json); uint8 output if asked."""
    from timm.data import create_transform

    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    return create_transform(**{k: data_cfg[k] for k in keys if k in data_cfg}, is_training=False,
                            use_prefetcher=uint8)


def train_transform(data_cfg: dict, aug: AugmentConfig) -> Callable:
    """timm's training transform (PIL path: RandAugment, color jitter) producing uint8 tensors."""
    from timm.data import create_transform

    return create_transform(
        input_size=data_cfg["input_size"], is_training=True, use_prefetcher=True, scale=tuple(aug.scale),
        ratio=tuple(aug.ratio),
        hflip=aug.hflip, vflip=aug.vflip, color_jitter=aug.color_jitter or None, auto_augment=aug.aa,
        interpolation=data_cfg["interpolation"], mean=data_cfg["mean"], std=data_cfg["std"])


def cache_transform(data_cfg: dict) -> Callable:
    """Resize the short side to the input size and centre-crop it: the decode-once train cache."""
    return eval_transform(dict(data_cfg, crop_pct=1.0, crop_mode="center"), uint8=True)


def preresize(ds, image_column: str, short_side: int, num_proc: int, desc: str):
    """`ds` with every image larger than `short_side` shrunk to it (aspect kept, RGB), written once as Arrow by
    datasets' map cache (keyed by the dataset's fingerprint, so the next run reuses it); smaller images pass."""
    from PIL import Image

    def shrink(batch: dict) -> dict:
        out = []
        for image in batch[image_column]:
            image = to_rgb(image)
            scale = short_side / min(image.size)
            if scale < 1:  # reducing_gap: decode-time draft + resample, as fast as PIL gets with good quality
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
            out.append(image)
        return {image_column: out}

    return ds.map(shrink, batched=True, batch_size=64, num_proc=num_proc if num_proc > 1 else None, desc=desc)


class HFImageDataset(torch.utils.data.Dataset):
    """A `datasets.Dataset` split as (uint8 CHW tensor, label, row index) samples; the label is the row's multi-hot
    float vector when `targets` (an (N, C) matrix, multi-label data) is given."""

    def __init__(self, ds, image_column: str, label_column: str, transform: Callable, targets=None) -> None:
        self.ds, self.image_column, self.label_column, self.transform = ds, image_column, label_column, transform
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple:
        row = self.ds[i]
        x = torch.as_tensor(self.transform(to_rgb(row[self.image_column])))
        return x, row[self.label_column] if self.targets is None else self.targets[i], i


class TensorImageDataset(torch.utils.data.Dataset):
    """Pre-decoded uint8 images held in memory, as (image, label, row index) samples."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple:
        return self.images[i], int(self.labels[i]) if self.labels.ndim == 1 else self.labels[i], i

    @classmethod
    def stack(cls, batches: list) -> TensorImageDataset:
        """From the (images, labels, rows) batches of decode_all."""
        return cls(torch.cat([x for x, _, _ in batches]), torch.cat([y for _, y, _ in batches]))

    def __getitems__(self, indices: list[int]) -> tuple:
        """A whole batch by one gather (DataLoader calls this instead of 64 __getitem__ + collate)."""
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index], index


def batch_collate(batch: tuple) -> tuple:
    """collate_fn for TensorImageDataset.__getitems__: the batch is already stacked."""
    return batch


def decode_all(ds: torch.utils.data.Dataset, num_workers: int, desc: str, batch_size: int = 256,
               collate_fn: Callable | None = None) -> list:
    """Read a whole split once (parallel workers, progress bar): its batches, for TensorImageDataset.stack (images)
    or trainer.data.waves.CachedWaves.pack (audio) to hold in memory."""
    from tqdm.auto import tqdm

    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_fn)
    return list(tqdm(loader, desc=desc, unit="batch", leave=False))


def use_decode_cache(mode: str, decoded_bytes: float, aug: AugmentConfig | None = None) -> bool:
    """Whether to decode once: 'on'/'off', or 'auto' when the decoded data fits CACHE_AUTO_LIMIT and no PIL-only
    augmentation needs the undecoded image (aug None: data that is only evaluated, or audio)."""
    pil_only = aug is not None and (aug.aa or aug.color_jitter)
    if mode == "on" and pil_only:  # decoding once means no PIL step per epoch: they would silently do nothing
        raise UserError("--aa and --color-jitter are PIL augmentations applied each time an image is decoded; "
                        "--decode-cache on decodes once, so they would be dropped. Use --decode-cache auto (it "
                        "turns the cache off for them) or drop the augmentation.")
    if mode != "auto":
        return mode == "on"
    return decoded_bytes <= CACHE_AUTO_LIMIT and (aug is None or (not aug.aa and not aug.color_jitter))


def pixel_bytes(n: int, input_size: tuple) -> int:
    """Bytes of n decoded uint8 images at input_size (C, H, W)."""
    c, h, w = input_size
    return n * c * h * w


class DevicePreprocess:
    """uint8 batch on the device → normalised float (+ batched crop/flip and random erasing in training)."""

    def __init__(self, data_cfg: dict, aug: AugmentConfig | None, channels_last: bool,
                 batch_crop: bool) -> None:
        self.mean = torch.tensor(data_cfg["mean"]).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(data_cfg["std"]).view(1, -1, 1, 1) * 255
        self.aug, self.channels_last, self.batch_crop = aug, channels_last, batch_crop and aug is not None
        self.erase = None
        if aug is not None and aug.reprob > 0:
            from timm.data.random_erasing import RandomErasing

            self.erase = RandomErasing(aug.reprob, mode="pixel", device="cpu")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to one uint8 NCHW batch."""
        x = x.float()
        if self.batch_crop:
            x = batch_random_resized_crop(x, self.aug)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if self.erase is not None:
            self.erase.device = x.device
            x = self.erase(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def batch_random_resized_crop(x: torch.Tensor, aug: AugmentConfig) -> torch.Tensor:
    """Per-sample RandomResizedCrop + flips as one affine grid_sample (same output size).

    Hand-written: torchvision's v2 RandomResizedCrop draws one crop per call, not per sample of a batch.
    """
    n, dev = x.shape[0], x.device
    area = torch.empty(n, device=dev).uniform_(*aug.scale)
    log_r = torch.empty(n, device=dev).uniform_(math.log(aug.ratio[0]), math.log(aug.ratio[1]))
    ratio = torch.exp(log_r)
    sw = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(n, device=dev) * 2 - 1) * (1 - sw)  # centre inside the image, in [-1, 1] coords
    cy = (torch.rand(n, device=dev) * 2 - 1) * (1 - sh)
    fx = torch.where(torch.rand(n, device=dev) < aug.hflip, -1.0, 1.0)
    fy = torch.where(torch.rand(n, device=dev) < aug.vflip, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sw * fx, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh * fy, cy
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                                           align_corners=False)


def verify_images(ds, image: str) -> tuple:
    """Drop rows whose image bytes do not decode (local folders); return (dataset, dropped count)."""
    import datasets
    from PIL import Image

    def ok(example: dict) -> bool:
        value = example[image]
        try:
            source = value["path"] if value.get("bytes") is None else io.BytesIO(value["bytes"])
            with Image.open(source) as im:
                im.load()
            return True
        except Exception:  # PIL raises many types for broken files
            return False

    raw = ds.cast_column(image, datasets.Image(decode=False))
    kept = raw.filter(ok, desc="check images")
    return kept.cast_column(image, ds.features[image]), len(ds) - len(kept)


