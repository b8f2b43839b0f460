"""Class name ↔ folder name in an imagefolder/audiofolder tree: one codec for the app's flywheel and the trainer."""

from __future__ import annotations

from urllib.parse import unquote

# Characters a folder name cannot hold on Linux, macOS or Windows, plus '%' (the escape itself). Only these are
# percent-encoded, so 'T-shirt/top' is stored as 'T-shirt%2Ftop' while any other name (accents, CJK) stays
# readable, and `folder_to_label` recovers the exact class name.
UNSAFE = set('/\\:*?"<>|%')
# The flywheel's log of who-predicted-what, beside the class folders. Not `metadata.jsonl`: datasets would read
# that name as per-file metadata and drop the labels it infers from the folders.
CORRECTIONS_LOG = "corrections.jsonl"
# The app stores new corrections in DIR/pending/<class>/; its owner reviews them (`python -m space.review DIR`) into
# DIR/accepted/<class>/, and `--extra-data DIR` trains on accepted ones only (unless --extra-data-pending).
PENDING_DIR, ACCEPTED_DIR = "pending", "accepted"


def review_folders(root, include_pending: bool = False) -> list:
    """The folders of <class>/<file> a corrections dir trains on: accepted/ (+ pending/), or root for a plain one."""
    from pathlib import Path

    root = Path(root)
    if not ((root / CORRECTIONS_LOG).exists() and ((root / PENDING_DIR).is_dir() or (root / ACCEPTED_DIR).is_dir())):
        return [root]  # a plain labelled folder, or one from before the review step
    return [root / ACCEPTED_DIR] + ([root / PENDING_DIR] if include_pending else [])


def label_to_folder(label: str) -> str:
    """The folder name that stores samples of class `label` (reversible; never hidden, never '.' or '..')."""
    if not label:
        raise ValueError("an empty class name has no folder")
    name = "".join(f"%{ord(c):02X}" if c in UNSAFE or ord(c) < 32 or ord(c) == 127 else c for c in label)
    # datasets and our loader skip hidden entries ('.x'), and '.'/'..' are not folders: encode a leading dot
    return "%2E" + name[1:] if name.startswith(".") else name


def folder_to_label(folder: str, labels: list[str]) -> str | None:
    """The class of `labels` a folder holds: its exact name, else its percent-decoded name; None if neither."""
    if folder in labels:
        return folder
    decoded = unquote(folder)
    return decoded if decoded in labels else None
