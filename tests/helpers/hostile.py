"""The hostile corpus: what the internet sends a public app and what careless input sends the trainer, generated at
test time (no checked-in binaries). tests/test_hostile_corpus.py runs it; bench/bench_hostile.py cycles the server
part of it under load. Each case names what must come back (a substring of the message)."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import app as image_cases
from tests.helpers import audio as audio_cases

FILE = {"_type": "gradio.FileData"}


@dataclass(frozen=True)
class Upload:
    """A file uploaded as a user's browser would, to `api` (with `extra` arguments after it)."""

    category: str
    path: Path
    api: str
    expect: str
    extra: tuple = ()


@dataclass(frozen=True)
class Raw:
    """A raw JSON payload posted to /gradio_api/call/<api> (no client-side checks); `expect` is in the answer."""

    category: str
    name: str
    api: str
    data: list
    expect: str


def raw_call(url: str, api: str, data: list) -> str:
    """POST `data` to /gradio_api/call/<api> and return the event stream's text ('http <code>: …' if refused)."""
    import httpx

    post = httpx.post(f"{url}/gradio_api/call/{api}", json={"data": data}, timeout=60)
    if post.status_code != 200:
        return f"http {post.status_code}: {post.text[:300]}"
    return httpx.get(f"{url}/gradio_api/call/{api}/{post.json()['event_id']}", timeout=60).text


def _flac_claiming(path: Path, seconds: float, rate: int) -> None:
    """A 1-second FLAC of DC whose STREAMINFO claims `seconds` (a header-trusting decoder would allocate it)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.full(rate, 0.5, np.float32), rate, format="FLAC", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    packed = struct.unpack(">Q", data[18:26])[0] & ~((1 << 36) - 1) | int(seconds * rate)
    data[18:26] = struct.pack(">Q", packed)
    path.write_bytes(bytes(data))


def image_uploads(root: Path) -> list[Upload]:
    """Bad image files: the app's refused set plus formats PIL must not open and other files renamed .png."""
    root.mkdir(parents=True, exist_ok=True)
    cases = [Upload("images", p, "/predict_image", m, (3,)) for p, m in image_cases.write_refused(root).items()]
    unreadable = "not an image file that can be read"
    (root / "eps.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\nshowpage\n")
    (root / "page.png").write_bytes(b"<!doctype html><script>alert(1)</script>")
    (root / "archive.jpg").write_bytes(b"PK\x03\x04" + b"\0" * 200)
    (root / "elf.gif").write_bytes(b"\x7fELF" + b"\0" * 200)
    for fmt, name in (("PPM", "image.ppm"), ("TGA", "image.tga"), ("ICO", "image.ico"), ("PCX", "image.pcx")):
        Image.new("RGB", (32, 32), "red").save(root / name, format=fmt)
    for name in ("eps.png", "page.png", "archive.jpg", "elf.gif", "image.ppm", "image.tga", "image.ico", "image.pcx"):
        cases.append(Upload("images", root / name, "/predict_image", f"{name}: {unreadable}", (3,)))
    return cases


def audio_uploads(root: Path) -> list[Upload]:
    """Bad audio files: the app's refused set plus costly headers and other files renamed as audio."""
    root.mkdir(parents=True, exist_ok=True)
    cases = [Upload("audio", p, "/predict_audio", m) for p, m in audio_cases.write_refused(root).items()]
    audio_cases.write(root / "500k.wav", audio_cases.tone(0.1, 500000), 500000, "PCM_16")
    audio_cases.write(root / "ch40.wav", np.zeros((1600, 40), np.float32) + 0.1, 16000, "PCM_16")
    _flac_claiming(root / "dc_59min_384k.flac", 59 * 60, 384000)
    image_cases.photo().save(root / "photo.mp3", format="PNG")
    (root / "report.ogg").write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\n")
    cases += [Upload("audio", root / "500k.wav", "/predict_audio", "rates from 1 kHz to 384 kHz are read"),
              Upload("audio", root / "ch40.wav", "/predict_audio", "the audio has 40 channels; at most 32"),
              Upload("audio", root / "dc_59min_384k.flac", "/predict_audio", "1359 M samples (59 minutes"),
              Upload("audio", root / "photo.mp3", "/predict_audio", "photo.mp3: not an audio file that can be read"),
              Upload("audio", root / "report.ogg", "/predict_audio", "report.ogg: not an audio file that can be read")]
    return cases


def raw_payloads(checkpoint: Path) -> list[Raw]:
    """Wrong types for every argument, paths and URLs where files belong, absurd numbers."""
    outside = {"path": str(checkpoint / "config.json"), "meta": FILE}
    moved = "Cannot move"
    cases = []
    for api in ("predict_image", "predict_audio"):
        rest = [3, "none"] if api == "predict_image" else []  # top_k, tta
        # gr.Image hands a FileData without `meta` to us (refused by guard_upload); gr.Audio refuses it itself
        no_meta = "{}: not a file uploaded to this app" if api == "predict_image" else "'meta' field must be"
        cases += [
            Raw("api", f"{api}: /etc/passwd", api, [{"path": "/etc/passwd", "meta": FILE}, *rest], moved),
            Raw("api", f"{api}: a relative ../ path", api, [{"path": "../../../etc/passwd", "meta": FILE}, *rest],
                moved),
            Raw("api", f"{api}: the checkpoint's own config", api, [outside, *rest], moved),
            Raw("api", f"{api}: a private URL", api, [{"path": "http://127.0.0.1:9/x", "meta": FILE}, *rest],
                "127.0.0.1"),
            Raw("api", f"{api}: a file URL", api, [{"path": "file:///etc/passwd", "meta": FILE}, *rest], "passwd"),
            Raw("api", f"{api}: an integer", api, [12345, *rest], "validation error"),
            Raw("api", f"{api}: a list", api, [["a", "b"], *rest], "validation error"),
            Raw("api", f"{api}: a dict without meta", api, [{"path": "x.png"}, *rest], no_meta.format("x.png")),
            Raw("api", f"{api}: a checkpoint path without meta", api, [{"path": outside["path"]}, *rest],
                no_meta.format("config.json")),
            Raw("api", f"{api}: no arguments", api, [], "didn't receive enough input values"),
            Raw("api", f"{api}: a 1 MB string", api, ["A" * (1 << 20), *rest], "validation error"),
        ]
    batch = "predict_image_batch"
    cases += [
        Raw("api", "batch: top_k text", batch, [{"path": None, "meta": FILE}, "abc"], "no file in the request"),
        Raw("api", "batch: an integer image", batch, [7, 3], "validation error"),
        Raw("api", "batch: a list image", batch, [[1, 2], 3], "validation error"),
        Raw("api", "batch: a server path without meta", batch, [{"path": "/etc/hostname"}, 3],
            "hostname: not a file uploaded to this app"),
        Raw("api", "batch: a data: URL that is not base64", batch, [{"url": "data:image/png;base64,!!!"}, 3],
            "not valid base64"),
        Raw("api", "batch: a URL", batch, [{"url": "http://169.254.169.254/latest/meta-data"}, 3],
            "no file in the request"),
        Raw("api", "predict_image: top_k text", "predict_image", [None, "five", "none"], ""),
        Raw("api", "predict_image: an unknown tta", "predict_image", [{"path": None, "meta": FILE}, 3, "rotate"],
            "tta must be one of none, flip, flip-crops"),
        Raw("api", "explain_image: /etc/passwd", "explain_image", [{"path": "/etc/passwd", "meta": FILE}, ""], moved),
        Raw("api", "classify_image: /etc/passwd", "classify_image", [{"path": "/etc/passwd", "meta": FILE}, 3],
            moved),
        Raw("api", "classify_image: a path without meta", "classify_image", [{"path": outside["path"]}, 3],
            "config.json: not a file uploaded to this app"),
        Raw("api", "classify_image: no image", "classify_image", [None, 3], "no image: pass one"),
        Raw("api", "explain_image: no file, a path as the class", "explain_image",
            [{"path": None, "meta": FILE}, "../x"], "is not a label of the served model"),
        Raw("api", "metrics_view: a path", "metrics_view", ["../../etc"], "not in the list of choices"),
        Raw("api", "metrics: a dict", "metrics", [{"a": 1}], "not in the list of choices"),
        Raw("api", "confusion_matrix: which=text", "confusion_matrix", ["x" * 1000, True], "not in the list"),
        Raw("api", "confused_samples: an unknown cell", "confused_samples", ["image", "99,99"], "not in the list"),
        Raw("api", "save_correction: a label with ../", "save_correction",
            [{"url": "data:image/png;base64,AAAA"}, "../../etc/passwd"], "is not a label of the served model"),
        Raw("api", "save_correction: an integer label", "save_correction", [None, 12345], "No image to correct"),
        Raw("api", "save_correction: no label", "save_correction", [{"path": None, "meta": FILE}, None],
            "Pick the correct label"),
        Raw("api", "save_audio_correction: a list clip", "save_audio_correction", [[1], "one"], ""),
    ]
    return cases
