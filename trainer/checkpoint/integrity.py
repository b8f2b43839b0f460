"""A checkpoint changes as a set: manifest.json lists the sha256 of each served file, readers trust only that.

The writer (checkpoint/write.py `install`) stages the new set, keeps each old file in .previous/ (a hard link)
before replacing it, and renames manifest.json last. A kill -9 at any point therefore leaves, for every file the
current manifest.json names, a copy with the right hash in the output dir or in .previous/ (the new manifest
lands only after every new file is in place, so .staging/ never holds a trusted one):
`consistent_dir` finds them and, when they are not all in place, links them into a temporary folder that holds
exactly the old or exactly the new checkpoint. No library offers this for a directory of files (checked:
huggingface_hub's local-dir snapshots, safetensors, timm's loaders); the bookkeeping is small.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from trainer.checkpoint.contract import (
    CONFIG,
    EVAL_DIR,
    MANIFEST,
    PREVIOUS_DIR,
    RESOLVED_CONFIG,
    TRAIN_CONFIG,
    WEIGHTS,
)
from trainer.errors import UserError

# the card (README.md) is derived from these, and re-rendered
HASHED = (CONFIG, WEIGHTS, TRAIN_CONFIG, RESOLVED_CONFIG, EVAL_DIR)


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder (every file's relative path and bytes, in sorted order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def digests(folder: Path) -> dict[str, str]:
    """{name: sha256} of the hashed files present in folder (what manifest.json's `files` records)."""
    return {name: sha256_of(folder / name) for name in HASHED if (folder / name).exists()}


def _matching(out: Path, where: str) -> dict[str, Path] | None:
    """{name: the copy whose hash manifest.json records} (None: no hashes to check); UserError if one is missing."""
    manifest = out / MANIFEST
    try:
        files = json.loads(manifest.read_text()).get("files") if manifest.is_file() else None
    except ValueError:
        raise UserError(f"{where}: manifest.json is not valid JSON (an interrupted write?); write the checkpoint "
                        "again.") from None
    if not isinstance(files, dict) or not files:
        return None
    chosen = {}
    for name, want in files.items():
        if name not in HASHED:
            continue
        found = next((d / name for d in (out, out / PREVIOUS_DIR)
                      if (d / name).exists() and sha256_of(d / name) == want), None)
        if found is None:
            raise UserError(f"{where}: {name} does not match manifest.json and no matching copy is left (a write "
                            "was interrupted and its files were changed since); write the checkpoint again.")
        chosen[name] = found
    return chosen


def restore(out: Path) -> None:
    """Put the copies manifest.json trusts back into out (the writer's side: before a new write or a push)."""
    for name, path in (_matching(out, str(out)) or {}).items():
        if path.parent != out:
            target = out / name
            if target.is_dir():
                aside = out / f".replaced_{name}"
                target.rename(aside)
                path.rename(target)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.replace(path, target)


def consistent_dir(out: Path, where: str) -> Path:
    """out itself when its files match its manifest.json; else a temp folder linking the matching copies (an
    interrupted write); a UserError when no complete set exists. Checkpoints without hashes pass as they are."""
    chosen = _matching(out, where)
    if chosen is None or all(p.parent == out for p in chosen.values()):
        return out
    assembled = Path(tempfile.mkdtemp(prefix="timm-space-ckpt-"))
    for name, path in chosen.items():
        os.symlink(path.resolve(), assembled / name)
    os.symlink((out / MANIFEST).resolve(), assembled / MANIFEST)
    return assembled
