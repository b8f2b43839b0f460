"""Data flywheel storage: a corrected label and the upload's original bytes, saved atomically, never overwritten.

Layout: DIR/pending/<class folder>/<UTC time>-<sha256 prefix>.<ext> — quarantined until the app's owner reviews
them (`python -m space.review DIR`, space/review.py) into DIR/accepted/<class folder>/, the folders
`trainer/train.py --extra-data DIR` trains on. Class names that a folder cannot hold are percent-encoded
(trainer/data/folder_labels.py, shared with the trainer). DIR/corrections.jsonl adds one line per stored file:
which model predicted what, and a hash of the client that sent it (for the hourly quota). Caps, quota and names
are checked under a file lock, so several app processes share one folder safely. Nothing here loads a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from space.image_uploads import PIL_FORMATS, InputError, decode_image, upload_source
from trainer.audio.decode import check_audio
from trainer.data.folder_labels import ACCEPTED_DIR, CORRECTIONS_LOG, PENDING_DIR, label_to_folder
from trainer.errors import UserError

log = logging.getLogger("timm_space.flywheel")
MB = 1 << 20
# PIL's format → the suffix stored; all are read by datasets' imagefolder. MPO: the JPEG of multi-lens phones.
IMAGE_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp",
                  "TIFF": ".tiff"}
# Audio stored as sent must be a container datasets' audiofolder reads (it skips .m4a/.aac: those are refused).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".webm")
FORMAT_SUFFIXES = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3"}  # the decoder's format names


@dataclass(frozen=True)
class Caps:
    """Size limits: on a public app, uploads must not fill the disk."""

    file_bytes: int = 20 * MB
    files: int = 1000
    total_bytes: int = 500 * MB
    per_client_hour: int = 30  # corrections one client may store per hour


@dataclass
class Upload:
    """A validated upload: its bytes exactly as sent, the suffix they are stored under, the decoded input."""

    data: bytes
    suffix: str
    modality: str
    decoded: object = None  # the RGB image, so that the handler predicts without decoding twice; None for audio


@dataclass(frozen=True)
class Saved:
    """Where a correction went and the folder's usage after it."""

    path: Path  # relative to the flywheel dir, e.g. Bag/20261125T101500Z-ab12cd34ef567890.png
    files: int
    total_bytes: int
    duplicate: bool = False  # the same file was already stored under this label: nothing new was written


def size_text(n: float) -> str:
    """Bytes for people: '812 kB', '3.4 MB'."""
    return f"{n / MB:.1f} MB" if n >= MB else f"{n / 1024:.0f} kB" if n >= 1024 else f"{n:.0f} bytes"


def _read(payload, max_bytes: int) -> tuple[bytes, str]:
    """(the upload's bytes, display name); refused from its size alone when over the per-file cap."""
    src, name = upload_source(payload)
    if isinstance(src, Path):
        if not src.is_file():
            raise InputError(f"{name}: the uploaded file is missing on the server; upload it again.")
        size = src.stat().st_size
    else:
        size = src.getbuffer().nbytes
    if size > max_bytes:
        raise InputError(f"{name}: the file is {size_text(size)}; a correction may be at most "
                         f"{size_text(max_bytes)}. Send a smaller file (nothing was saved).")
    return (src.read_bytes() if isinstance(src, Path) else src.getvalue()), name


def image_upload(payload, caps: Caps) -> Upload:
    """An image upload checked to decode exactly as a prediction would (space/image_uploads.py); InputError if not."""
    from PIL import Image

    data, name = _read(payload, caps.file_bytes)
    rgb, _notes = decode_image(payload)
    with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as im:  # the real format, whatever the name says
        fmt = im.format
    if fmt not in IMAGE_SUFFIXES:
        raise InputError(f"{name}: {fmt} images are not stored as corrections; convert it to PNG or JPEG "
                         "(stored formats: PNG, JPEG, GIF, WebP, BMP, TIFF).")
    return Upload(data, IMAGE_SUFFIXES[fmt], "image", rgb)


def audio_upload(payload, caps: Caps) -> Upload:
    """An audio upload checked to decode (trainer/audio/decode.py, what training reads with); UserError if not."""
    data, name = _read(payload, caps.file_bytes)
    info = check_audio(data, name)
    # the decoder names WAV, FLAC, OGG and MP3 streams; for the rest (Opus, WebM) the upload's suffix decides
    suffix = FORMAT_SUFFIXES.get(info.format.split(" ")[0], Path(name).suffix.lower())
    if suffix not in AUDIO_SUFFIXES:
        raise InputError(f"{name}: {info.format} audio is not stored as corrections; convert it to WAV or FLAC "
                         f"(stored: {', '.join(AUDIO_SUFFIXES)}).")
    return Upload(data, suffix, "audio")


def check_label(label: str | None, labels: list[str]) -> None:
    """InputError unless `label` is one of the served model's labels (the message lists them)."""
    if not label:
        raise InputError("Pick the correct label from the list first (nothing was saved).")
    if label not in labels:
        shown = ", ".join(labels[:30]) + (f", … ({len(labels)} in all)" if len(labels) > 30 else "")
        raise InputError(f"{str(label)[:80]!r} is not a label of the served model; pick one of: {shown}. "
                         "Nothing was saved.")


def client_id(request, behind_proxy: bool) -> str | None:
    """Who sent a request, for the quota: the first X-Forwarded-For hop behind a proxy that sets it (a Space's),
    else the connecting address (gradio's request.client.host). None when gradio gives no request."""
    if request is None:
        return None
    forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for", "") if behind_proxy else ""
    host = forwarded.split(",")[0].strip() if forwarded else getattr(getattr(request, "client", None), "host", "")
    return host or None


def stored_in(folder: Path) -> list[Path]:
    """The corrections in one state folder, <class>/<file>, without the hidden temp files of a save in progress."""
    return sorted(p for p in folder.glob("*/*")
                  if p.is_file() and not p.name.startswith(".") and not p.parent.name.startswith("."))


@contextlib.contextmanager
def folder_lock(root: Path):
    """An exclusive lock on root/.lock across processes (fcntl.flock; threads are serialised by the caller)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fh = open(root / ".lock", "a")  # noqa: SIM115 - closed by the with below
    except OSError as e:
        raise UserError(f"cannot store the correction in {root} ({type(e).__name__}: {e}); check that the "
                        "directory is writable and the disk has space. Nothing was saved.") from None
    with fh:
        try:
            import fcntl
        except ImportError:  # Windows: one process per folder is assumed (documented)
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Flywheel:
    """One app's corrections folder: usage, caps, the hourly quota per client, and the atomic save."""

    def __init__(self, root: str | Path, caps: Caps | None = None) -> None:
        self.root = Path(root).expanduser()
        self.caps = caps or Caps()
        self._lock = threading.Lock()  # gradio runs handlers in threads: cap check + write must be one step

    def stored(self) -> list[Path]:
        """The stored corrections, pending and accepted, <state>/<class>/<file> (temp files excluded)."""
        return sorted(stored_in(self.root / PENDING_DIR) + stored_in(self.root / ACCEPTED_DIR))

    def usage(self) -> tuple[int, int]:
        """(files, bytes) stored so far."""
        files = self.stored()
        return len(files), sum(p.stat().st_size for p in files)

    def save(self, upload: Upload, label: str | None, labels: list[str], meta: dict | None = None,
             client: str | None = None) -> Saved:
        """Store one correction in pending/<label>/, or say why not (label, caps, quota, disk)."""
        check_label(label, labels)
        digest = hashlib.sha256(upload.data).hexdigest()
        folder = self.root / PENDING_DIR / label_to_folder(label)
        with self._lock, folder_lock(self.root):
            who = hashlib.sha256(f"{self._salt()}|{client}".encode()).hexdigest()[:16] if client else None
            files, total = self.usage()
            same = [p for state in (PENDING_DIR, ACCEPTED_DIR)
                    for p in sorted((self.root / state / label_to_folder(label)).glob(f"*-{digest[:16]}*"))]
            if same:  # a double click or a re-send: one copy is enough
                return Saved(same[0].relative_to(self.root), files, total, duplicate=True)
            self._check_caps(files, total, len(upload.data))
            self._check_quota(who)
            path = self._write(folder, digest, upload.data, upload.suffix)
            self._log({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "epoch": round(time.time(), 1),
                       "file": path.relative_to(self.root).as_posix(), "label": label, "modality": upload.modality,
                       "sha256": digest, "bytes": len(upload.data), "client": who, **(meta or {})})
        return Saved(path.relative_to(self.root), files + 1, total + len(upload.data))

    def _salt(self) -> str:
        """This folder's random salt (created once): a hashed address cannot be reversed by trying all of them."""
        path = self.root / ".salt"
        if not path.is_file():
            path.write_text(secrets.token_hex(16))
        return path.read_text().strip()

    def _check_quota(self, who: str | None) -> None:
        """InputError when this client already stored its hourly quota (counted in corrections.jsonl)."""
        if who is None:
            return
        since, count = time.time() - 3600, 0
        with contextlib.suppress(OSError):
            for line in (self.root / CORRECTIONS_LOG).read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    record = json.loads(line)
                    count += record.get("client") == who and record.get("epoch", 0) >= since
        if count >= self.caps.per_client_hour:
            raise InputError(f"You have sent {count} corrections in the last hour, the limit per visitor; thank "
                             "you! Try again later (nothing was saved).")

    def _log(self, record: dict) -> None:
        """Append one line to corrections.jsonl; the file itself is already stored, so a failure only warns."""
        try:
            with open(self.root / CORRECTIONS_LOG, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")  # one write per line: no interleaving
        except OSError as e:
            log.warning("stored %s but could not append to %s: %s", record["file"], CORRECTIONS_LOG, e)

    def _check_caps(self, files: int, total: int, size: int) -> None:
        """InputError when one more file of `size` bytes would pass the folder's caps."""
        where = "Nothing was saved. The app's owner can train on them (trainer/train.py --extra-data DIR) and move"
        if files + 1 > self.caps.files:
            raise InputError(f"The corrections folder is full ({files} files; the limit is {self.caps.files}). "
                             f"{where} them away, or raise --flywheel-max-files.")
        if total + size > self.caps.total_bytes:
            raise InputError(f"The corrections folder is full ({size_text(total)} stored; with this file "
                             f"{size_text(total + size)}, over the limit of {size_text(self.caps.total_bytes)}). "
                             f"{where} them away, or raise --flywheel-max-mb.")

    def _write(self, folder: Path, digest: str, data: bytes, suffix: str) -> Path:
        """Write tmp + fsync + rename: a training run reading the folder sees whole files only."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = folder / f"{stamp}-{digest[:16]}{suffix}"
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"  # hidden: datasets and the trainer skip it
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if path.exists():  # unreachable (same name = same bytes = duplicate above), but never overwrite
                raise FileExistsError(path)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic; the lock above keeps two saves of this process from racing
        except OSError as e:
            raise UserError(f"cannot store the correction in {self.root} ({type(e).__name__}: {e}); check that "
                            "the directory is writable and the disk has space. Nothing was saved.") from None
        finally:
            with contextlib.suppress(OSError):  # left only by a failed write; the folder may not even exist
                tmp.unlink(missing_ok=True)
        return path
