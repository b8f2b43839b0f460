"""Awkward image files for the app's bad-input tests, written with PIL (and by hand where PIL would refuse)."""

from __future__ import annotations

import io
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# (file name, expected words of the gr.Error message) — the app must refuse these and keep serving.
REFUSED = {
    "text.png": "text.png: not an image file that can be read",
    "report.pdf": "report.pdf: not an image file that can be read",
    "drawing.svg": "drawing.svg: not an image file that can be read",
    "empty.png": "empty.png: the file is empty (0 bytes)",
    "truncated.png": "truncated.png: the image data is truncated or corrupt",
    "truncated.jpg": "truncated.jpg: the image data is truncated or corrupt",
    "corrupt.png": "corrupt.png: the image data is truncated or corrupt",
    "one_pixel.png": "one_pixel.png: the image is 1×1 pixels; at least 8×8 is needed",
    "bomb.png": "bomb.png: the image is over 179 megapixels (a decompression bomb?); the limit is 64 megapixels",
    "large.png": "large.png: the image is 10000×8000 pixels (80 megapixels); the limit is 64 megapixels",
}
# (file name, expected note) — the app must classify these, saying what it converted.
CONVERTED = {
    "cmyk.jpg": "converted CMYK to RGB",
    "gray16.png": "I;16 (16-bit) pixels rescaled to 8-bit RGB",
    "palette.png": "converted P to RGB",
    "rgba.png": "RGBA transparency composited on white",
    "animated.gif": "GIF with 3 frames: classified the first frame",
    "rotated.jpg": "applied EXIF orientation 6",
    "gray.png": "converted L to RGB",
}


def free_port() -> int:
    """A port nobody listens on right now (other test sessions may run beside this one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(settings):
    """(demo, gradio_client.Client) of the app built from settings, served on a free local port; demo.close() ends
    it."""
    from gradio_client import Client

    from space.ui import build_demo

    demo = build_demo(settings)
    options = {**settings.launch_options(), "server_name": "127.0.0.1", "server_port": free_port()}
    _, url, _ = demo.launch(**options, prevent_thread_lock=True, quiet=True)
    return demo, Client(url, verbose=False)


def photo(w: int = 48, h: int = 32, seed: int = 0) -> Image.Image:
    """A small RGB image with structure (so rotations and frames change the prediction)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    arr[: h // 2, : w // 3] = (250, 20, 20)
    return Image.fromarray(arr)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(w: int, h: int) -> bytes:
    """A PNG claiming w×h pixels with almost no data: a decompression bomb's header costs nothing to write."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    """Encode an image to bytes."""
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _corrupt_png() -> bytes:
    """A PNG whose header is fine and whose compressed pixel data is garbage."""
    data = bytearray(_save(photo(), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 8:start + 200] = bytes(range(192))
    return bytes(data)


def _animated_gif() -> bytes:
    """Three different frames; the first is the picture a browser shows first."""
    frames = [photo(seed=i).convert("P") for i in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _rotated_jpeg() -> bytes:
    """A landscape JPEG whose EXIF says 'rotate 90° clockwise to view' (orientation 6), as phones write them."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(photo(64, 32), "JPEG", exif=exif.tobytes(), quality=95)


def write_refused(root: Path) -> dict[Path, str]:
    """Write every REFUSED case under root; path → expected message."""
    good_png, good_jpg = _save(photo(), "PNG"), _save(photo(), "JPEG")
    content = {
        "text.png": b"this is a text file, renamed", "report.pdf": b"%PDF-1.4\n1 0 obj << >> endobj\n",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "empty.png": b"",
        "truncated.png": good_png[: len(good_png) // 2], "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "corrupt.png": _corrupt_png(), "one_pixel.png": _save(Image.new("RGB", (1, 1), "red"), "PNG"),
        "bomb.png": png_header_only(20000, 20000), "large.png": png_header_only(10000, 8000),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, data in content.items():
        (root / name).write_bytes(data)
    return {root / name: REFUSED[name] for name in content}


def write_converted(root: Path) -> dict[Path, str]:
    """Write every CONVERTED case under root; path → expected note."""
    gray16 = Image.fromarray(np.asarray(photo().convert("L"), dtype=np.uint16) * 257)
    rgba = photo().convert("RGBA")
    rgba.putalpha(128)
    content = {
        "cmyk.jpg": _save(photo().convert("CMYK"), "JPEG"), "gray16.png": _save(gray16, "PNG"),
        "palette.png": _save(photo().convert("P"), "PNG"), "rgba.png": _save(rgba, "PNG"),
        "animated.gif": _animated_gif(), "rotated.jpg": _rotated_jpeg(), "gray.png": _save(photo().convert("L"), "PNG"),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, data in content.items():
        (root / name).write_bytes(data)
    return {root / name: CONVERTED[name] for name in content}
