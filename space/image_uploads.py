"""Decode an uploaded image file ourselves: RGB for the model, notes on what was converted, one clear error if not."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.data.images import MAX_ASPECT, to_rgb

if TYPE_CHECKING:
    from PIL import Image

# 64 megapixels admits every phone/DSLR photo (50 MP ≈ 8160×6120) while a 20000×20000 decompression bomb
# (400 MP, 1.2 GB decoded) is refused from its header, before a single pixel is decoded.
MAX_PIXELS = 64_000_000
# Below 8 px a side there is nothing left to classify (8 px still admits sklearn's 8×8 digits).
MIN_SIDE = 8
FORMATS = "PNG, JPEG, GIF, WebP, BMP or TIFF"
# What PIL may try, by its format names (JPEG also opens the multi-picture JPEGs phones write). Anything else it
# knows stays closed: EPS would run Ghostscript where installed, and rarer plugins are more attack surface than use.
PIL_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


def md_escape(value, limit: int = 120) -> str:
    """Text from a user or someone else's checkpoint (a file name, an EXIF value, a label) as inert Markdown: one
    line, at most `limit` characters, with Markdown and HTML characters escaped."""
    text = " ".join(str(value).split())[:limit]
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+!|~" else ch for ch in text)


class InputError(ValueError):
    """An upload we cannot classify; the message is shown to the user as is."""


def guard_upload(payload) -> None:
    """Refuse a payload naming a server path outside gradio's upload folder. Gradio itself refuses such a path in
    a FileData (with its `meta`); a bare string or a dict without `meta` reaches our preprocess=False handlers."""
    path = payload if isinstance(payload, str | Path) else payload.get("path") if isinstance(payload, dict) else None
    if not isinstance(path, str | Path) or not str(path):
        return
    from gradio.utils import get_upload_folder

    if not Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve()):
        raise InputError(f"{Path(str(path)).name[:80]}: not a file uploaded to this app; send the file itself "
                         "(a multipart upload, or gradio_client.handle_file).")


def upload_source(payload) -> tuple[io.BytesIO | Path, str]:
    """(file path or bytes, display name) of an upload: a gradio FileData dict, a path, or a data: URL."""
    if payload is None:
        raise InputError("No image: upload a file, take a webcam picture or paste one from the clipboard.")
    if isinstance(payload, str | Path):
        return Path(payload), Path(payload).name
    if not isinstance(payload, dict):  # a raw API caller sent a number, a list, ...
        raise InputError(f"expected an uploaded image file, got a {type(payload).__name__}.")
    name = str(payload.get("orig_name") or "image")[:80]  # echoed in messages: keep a hostile name short
    if isinstance(payload.get("path"), str | Path) and payload["path"]:
        return Path(payload["path"]), name
    url = payload.get("url") if isinstance(payload.get("url"), str) else ""
    if url.startswith("data:") and "," in url:
        try:
            return io.BytesIO(base64.b64decode(url.split(",", 1)[1], validate=True)), name
        except (binascii.Error, ValueError):
            raise InputError(f"{name}: the data: URL is not valid base64.") from None
    raise InputError(f"{name}: no file in the request (send the image as a file).")


def _open(src: io.BytesIO | Path, name: str):
    """PIL.Image.open (reads the header only) with one message per way it fails."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(src, Path):
        if not src.is_file():
            raise InputError(f"{name}: the uploaded file is missing on the server; upload it again.")
        if src.stat().st_size == 0:
            raise InputError(f"{name}: the file is empty (0 bytes).")
    try:
        return Image.open(src, formats=PIL_FORMATS)
    except Image.DecompressionBombError:  # PIL refuses > 2 × MAX_IMAGE_PIXELS before we see the size
        raise InputError(f"{name}: the image is over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (a "
                         f"decompression bomb?); the limit is {MAX_PIXELS / 1e6:.0f} megapixels. "
                         "Downscale it first.") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image file that can be read (expected {FORMATS}).") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL reports bad headers with all three
        raise InputError(f"{name}: the image header is corrupt ({e}).") from None


def _check_size(im, name: str) -> None:
    """Refuse decompression bombs and images too small to carry anything, from the header size."""
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise InputError(f"{name}: the image is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels. Downscale it first.")
    if min(w, h) < MIN_SIDE:
        raise InputError(f"{name}: the image is {w}×{h} pixels; at least {MIN_SIDE}×{MIN_SIDE} is needed "
                         "for a meaningful prediction.")


def _orient(im, notes: list[str]):
    """Apply the EXIF orientation (phones store photos sideways and set a flag) and note it."""
    from PIL import ImageOps

    try:
        orientation = im.getexif().get(0x0112, 1)  # 0x0112 = Orientation
    except Exception:  # a malformed EXIF block must not cost the prediction
        notes.append("ignored unreadable EXIF metadata")
        return im
    if orientation in (None, 1):
        return im
    try:
        rotated = ImageOps.exif_transpose(im)
    except Exception:  # same: classify the stored pixels rather than fail
        notes.append(f"could not apply EXIF orientation {md_escape(orientation, 20)}; used the stored pixels")
        return im
    notes.append(f"applied EXIF orientation {md_escape(orientation, 20)} (rotated as the camera intended)")
    return rotated


def _to_rgb(im, name: str, notes: list[str]):
    """trainer.data.images.to_rgb (the conversion training used, which also cuts a strip to MAX_ASPECT:1), noting
    what it changed."""
    mode, (w, h) = im.mode, im.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        notes.append(f"a {w}×{h} strip (over {MAX_ASPECT}:1): classified its centre, "
                     f"{min(w, h) * MAX_ASPECT if w > h else w}×{h if w > h else min(w, h) * MAX_ASPECT} px")
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
    try:
        rgb = to_rgb(im)
    except (ValueError, OSError) as e:
        raise InputError(f"{name}: colour mode {mode} cannot be converted to RGB ({e}).") from None
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        notes.append(f"{mode} ({'16' if '16' in mode else '32'}-bit) pixels rescaled to 8-bit RGB")
    elif has_alpha:
        notes.append(f"{mode} transparency composited on white")
    elif mode != "RGB":
        notes.append(f"converted {mode} to RGB")
    return rgb


def decode_image(payload) -> tuple[Image.Image, list[str]]:
    """(RGB image, notes on conversions) from an upload; InputError with a clear message if it is unusable."""
    src, name = upload_source(payload)
    im = _open(src, name)
    notes: list[str] = []
    _check_size(im, name)
    frames = getattr(im, "n_frames", 1)
    if frames > 1:  # animated GIF/WebP/PNG or multi-page TIFF: the first frame is the picture people see
        im.seek(0)
        notes.append(f"{im.format} with {frames} frames: classified the first frame")
    try:
        im.load()
    except Exception as e:  # truncated/corrupt data surfaces as OSError, SyntaxError, zlib errors…
        raise InputError(f"{name}: the image data is truncated or corrupt ({type(e).__name__}: {e}).") from None
    im = _orient(im, notes)
    return _to_rgb(im, name, notes), notes
