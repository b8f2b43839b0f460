"""--extra-data DIR: labelled folders (the app's data flywheel corrections) appended to the TRAIN split only.

A corrections dir of the app trains on its reviewed files, DIR/accepted/<class>/ (plus DIR/pending/ with
--extra-data-pending); any other folder is read as DIR/<class>/<file>.

Extra rows are added after the validation holdout and after --max-train-samples, so they never reach val/test
(a correction must not grade the model that learns from it) and the cap never drops them: they come on top.
They are the last rows of the train split; `split_off_extra` lets --folds keep them out of every fold's val.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from trainer.data.folder_labels import CORRECTIONS_LOG, PENDING_DIR, folder_to_label, review_folders
from trainer.data.images import verify_images
from trainer.data.sources import AUDIO_SUFFIXES, IMAGE_SUFFIXES
from trainer.data.waves import verify_audio
from trainer.errors import UserError

FOLDER_HINT = ("one sub-folder per class holding its files, e.g. DIR/Bag/x.png (the layout the app's "
               "--flywheel-dir writes)")


def _builder(kind: str):
    """The datasets packaged builder class for 'image' or 'audio' folders (its EXTENSIONS are what it reads)."""
    if kind == "audio":
        from datasets.packaged_modules.audiofolder.audiofolder import AudioFolder

        return AudioFolder
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    return ImageFolder


def scan(root: Path) -> tuple[str | None, list[Path], list[Path]]:
    """(kind 'image'|'audio'|None, media files at root/<class>/<file>, other files ignored); hidden entries skipped."""
    media, other = [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file() or str(rel) == CORRECTIONS_LOG:
            continue  # .tmp files of an interrupted save, .cache/, the flywheel's own log
        suffix = path.suffix.lower()
        is_media = suffix in IMAGE_SUFFIXES | AUDIO_SUFFIXES
        (media if is_media and len(rel.parts) == 2 else other).append(path)
    kinds = {"audio" if p.suffix.lower() in AUDIO_SUFFIXES else "image" for p in media}
    if len(kinds) > 1:
        raise UserError(f"--extra-data {root} mixes image and audio files; keep one modality per directory.")
    kind = kinds.pop() if kinds else None
    if kind:  # what the datasets builder would silently skip is reported instead
        readable = _builder(kind).EXTENSIONS
        other += [p for p in media if p.suffix.lower() not in readable]
        media = [p for p in media if p.suffix.lower() in readable]
    return kind, media, other


def _check_labels(root: Path, media: list[Path], label_names: list[str]) -> dict[str, int]:
    """{folder name: class index}; UserError naming unknown folders and listing the dataset's classes."""
    folders = sorted({p.parent.name for p in media})
    unknown = [f for f in folders if folder_to_label(f, label_names) is None]
    if unknown:
        raise UserError(f"--extra-data {root}: folder(s) {unknown[:10]} are not classes of the dataset. Known "
                        f"classes: {label_names}. Rename each folder to one of them (a class name with '/' or "
                        "another character a folder cannot hold is percent-encoded, e.g. 'T-shirt%2Ftop'), or "
                        "remove it.")
    return {f: label_names.index(folder_to_label(f, label_names)) for f in folders}


def _load(root: Path, kind: str, media: list[Path], index: dict[str, int], features, image: str, label: str):
    """The folder as a Dataset with exactly `features` (train's): labels mapped by name, other columns None."""
    import datasets

    # data_files, not data_dir: a class folder named 'train' or 'test' would otherwise be taken for a split.
    # drop_labels=False: with corrections in a single class, the builder would drop the label column.
    ds = datasets.load_dataset(f"{kind}folder", data_files={"train": [str(p) for p in media]},
                               drop_labels=False, split="train")
    source = ds.features["label"].names  # the builder's ClassLabel: sorted folder names
    target = [index[name] for name in source]
    mapped = datasets.Features({**ds.features, "label": datasets.Value("int64")})
    ds = ds.map(lambda b: {"label": [target[y] for y in b["label"]]}, batched=True, features=mapped,
                desc=f"map labels of {root.name}")
    ds = ds.rename_columns({old: new for old, new in ((kind, image), ("label", label)) if old != new})
    for column in features:
        if column not in ds.column_names:  # e.g. an id column of a Hub dataset: unknown for a correction
            ds = ds.add_column(column, [None] * len(ds))
    return ds.select_columns(list(features)).cast(features)


def _scan_review(root: Path, include_pending: bool) -> tuple[str | None, list[Path], list[Path]]:
    """scan() over the folders a corrections dir trains on: accepted/ (+ pending/), or the dir itself."""
    folders = review_folders(root, include_pending)
    if folders != [root] and not include_pending and (root / PENDING_DIR).is_dir():
        waiting = len(scan(root / PENDING_DIR)[1])
        if waiting:
            print(f"extra data: {waiting} correction(s) in {root / PENDING_DIR} are not reviewed and not used; "
                  f"review them with `python -m space.review {root}` (or pass --extra-data-pending)", flush=True)
    kinds, media, other = set(), [], []
    for folder in folders:
        if folder.is_dir():
            kind, m, o = scan(folder)
            kinds |= {kind} - {None}
            media, other = media + m, other + o
    if len(kinds) > 1:
        raise UserError(f"--extra-data {root} mixes image and audio files; keep one modality per directory.")
    return (kinds.pop() if kinds else None), media, other


def load_extra(path: str, features, image: str, label: str, label_names: list[str], modality: str,
               include_pending: bool = False):
    """One --extra-data dir as rows shaped like the train split (None when it holds no files) and its stats."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"--extra-data {path}: no such directory. Give a folder with {FOLDER_HINT}.")
    kind, media, other = _scan_review(root, include_pending)
    if other:
        print(f"warning: --extra-data {path}: ignored {len(other)} file(s) not at <class>/<file> or not "
              f"readable as {kind or 'image or audio'} (e.g. {other[0]})", flush=True)
    if kind is None:
        print(f"warning: --extra-data {path}: no image or audio files found (expected {FOLDER_HINT})", flush=True)
        return None, {"dir": str(path), "samples": 0, "skipped": 0, "per_class": {}}
    if kind != modality:
        raise UserError(f"--extra-data {path} holds {kind} files but --dataset is {modality} data; give "
                        f"{modality} corrections (from the app's matching tab).")
    ds = _load(root, kind, media, _check_labels(root, media, label_names), features, image, label)
    verify = verify_audio if kind == "audio" else verify_images
    ds, skipped = verify(ds, image)
    counts = Counter(label_names[y] for y in ds[label])
    return ds, {"dir": str(path), "samples": len(ds), "skipped": skipped, "per_class": dict(sorted(counts.items()))}


def add_extra_data(splits: dict, dirs: list[str], image: str, label: str, label_names: list[str],
                   modality: str, include_pending: bool = False) -> list[dict]:
    """Append every --extra-data dir to splits['train'] (in place); one stats dict per dir, for the manifest."""
    import datasets

    stats, parts = [], [splits["train"]]
    for path in dirs:
        ds, info = load_extra(path, splits["train"].features, image, label, label_names, modality, include_pending)
        stats.append(info)
        if ds is not None and len(ds):
            parts.append(ds)
        classes = ", ".join(f"{k}: {v}" for k, v in info["per_class"].items())
        skipped = f"; skipped {info['skipped']} unreadable" if info["skipped"] else ""
        print(f"extra data: {info['samples']} samples from {path} ({classes or 'none'}{skipped}), "
              "added to the train split only", flush=True)
    if len(parts) > 1:
        splits["train"] = datasets.concatenate_datasets(parts)
    return stats


def split_off_extra(train, source: dict) -> tuple:
    """(train without the extra rows, the extra rows or None): they are the tail added by add_extra_data."""
    n = sum(info["samples"] for info in source.get("extra_data", []))
    if not n:
        return train, None
    cut = len(train) - n
    return train.select(range(cut)), train.select(range(cut, len(train)))
