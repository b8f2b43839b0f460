"""Review the app's corrections before training uses them: `python -m space.review DIR [list|accept|reject] [ID…]`.

New corrections wait in DIR/pending/<class>/; `accept` moves them to DIR/accepted/<class>/ (what `trainer/train.py
--extra-data DIR` trains on), `reject` deletes them. An ID is the 16-hex content hash in the file name (a unique
prefix of it is enough); `--all` takes every pending one. `list` prints the pending corrections and writes
DIR/review.html: a page of thumbnails (images) or players (audio) with each ID, label and what the model said.
Every change is logged to DIR/corrections.jsonl and made under the same folder lock the app saves under.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

from space.flywheel import folder_lock, stored_in
from trainer.data.folder_labels import ACCEPTED_DIR, CORRECTIONS_LOG, PENDING_DIR
from trainer.errors import CLIParser, UserError, exit_on_user_error

REVIEW_PAGE = "review.html"


def file_id(path: Path) -> str:
    """The 16-hex content hash the app puts in each file name (<UTC time>-<hash>.<ext>)."""
    return path.stem.rsplit("-", 1)[-1]


def _log_records(root: Path) -> dict[str, dict]:
    """corrections.jsonl by file path (what the model predicted, when)."""
    records = {}
    try:
        for line in (root / CORRECTIONS_LOG).read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "file" in record:
                records[record["file"]] = record
    except OSError:
        pass
    return records


def write_page(root: Path, files: list[Path]) -> Path:
    """DIR/review.html: one card per pending correction (thumbnail or player, ID, label, prediction)."""
    records = _log_records(root)
    cards = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        record = records.get(rel, {})
        media = (f'<audio controls src="{html.escape(rel)}"></audio>' if record.get("modality") == "audio"
                 or path.suffix in (".wav", ".flac", ".mp3", ".ogg", ".opus", ".webm")
                 else f'<img src="{html.escape(rel)}" style="max-width:160px;max-height:160px">')
        said = f"model said {record.get('predicted')} ({record.get('confidence')})" if record else ""
        cards.append(f"<figure>{media}<figcaption><code>{html.escape(file_id(path))}</code><br>label "
                     f"<b>{html.escape(path.parent.name)}</b><br>{html.escape(said)}</figcaption></figure>")
    page = ("<!doctype html><meta charset=utf-8><title>Pending corrections</title><style>figure{display:inline-block;"
            "margin:8px;vertical-align:top}</style>"
            f"<h1>{len(files)} pending corrections</h1>{''.join(cards)}")
    out = root / REVIEW_PAGE
    tmp = root / f".{REVIEW_PAGE}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def select(files: list[Path], ids: list[str], take_all: bool) -> list[Path]:
    """The pending files named by ID prefixes (each must match exactly one), or all of them."""
    if take_all:
        return files
    if not ids:
        raise UserError("name the corrections by ID (see `list`), or pass --all.")
    chosen = []
    for wanted in ids:
        hits = [p for p in files if file_id(p).startswith(wanted.lower())]
        if len(hits) != 1:
            raise UserError(f"ID {wanted!r} matches {len(hits)} pending corrections; give a longer prefix "
                            "(`list` shows them).")
        chosen.append(hits[0])
    return chosen


def decide(root: Path, files: list[Path], action: str) -> None:
    """accept: move to accepted/<class>/; reject: delete. One corrections.jsonl line each."""
    with open(root / CORRECTIONS_LOG, "a", encoding="utf-8") as log:
        for path in files:
            rel = path.relative_to(root).as_posix()
            if action == "accept":
                target = root / ACCEPTED_DIR / path.parent.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
            else:
                path.unlink()
            log.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "review": action,
                                  "file": rel}) + "\n")


def main(argv: list[str] | None = None) -> None:
    """List, accept or reject pending corrections."""
    parser = CLIParser(prog="python -m space.review", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="the app's --flywheel-dir")
    parser.add_argument("action", nargs="?", default="list", choices=["list", "accept", "reject"])
    parser.add_argument("ids", nargs="*", help="IDs (prefixes of the content hash) of pending corrections")
    parser.add_argument("--all", action="store_true", help="accept or reject every pending correction")
    args = parser.parse_args(argv)
    root = Path(args.dir).expanduser()
    if not root.is_dir():
        raise UserError(f"{args.dir}: no such directory (the app's --flywheel-dir).")
    with folder_lock(root):
        files = stored_in(root / PENDING_DIR)
        if args.action == "list":
            page = write_page(root, files)
            for path in files:
                print(f"{file_id(path)}  {path.parent.name}  {path.relative_to(root).as_posix()}")
            accepted = len(stored_in(root / ACCEPTED_DIR))
            print(f"{len(files)} pending, {accepted} accepted; thumbnails in {page}", flush=True)
            return
        chosen = select(files, args.ids, args.all)
        decide(root, chosen, args.action)
    print(f"{args.action}ed {len(chosen)} correction(s); {len(files) - len(chosen)} still pending", flush=True)


if __name__ == "__main__":
    exit_on_user_error(main)
