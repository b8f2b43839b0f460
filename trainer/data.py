"""Dataset source → train/val/test `datasets.Dataset` splits with one image column and a ClassLabel column."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import DataConfig
from trainer.embedded import EMBEDDED, load_embedded
from trainer.errors import UserError
from trainer.extra_data import add_extra_data

VAL_NAMES = ("validation", "valid", "val", "dev")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "fine_label")
IMAGE_NAMES = ("image", "img", "picture", "pixel_values")
AUDIO_NAMES = ("audio", "sound", "speech", "wav", "file")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".webm"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class DataBundle:
    """The splits the trainer uses, with the detected columns and the label names."""

    train: "datasets.Dataset"  # noqa: F821 - datasets is imported lazily
    val: "datasets.Dataset"  # noqa: F821
    test: "datasets.Dataset" | None  # noqa: F821
    image_column: str  # the input column: an Image, or an Audio column when modality == "audio"
    label_column: str
    label_names: list[str]
    source: dict = field(default_factory=dict)  # id, config, revision, fingerprints: for the manifest
    skipped: int = 0  # unreadable files dropped from a local folder
    modality: str = "image"  # "audio" when the input column is a datasets.Audio feature


def load_source(cfg: DataConfig):
    """The raw DatasetDict for --dataset: embedded name, local folder, or Hub id."""
    import datasets

    if cfg.dataset in EMBEDDED:
        return load_embedded(cfg.dataset)
    path = Path(cfg.dataset).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").exists():
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset(folder_builder(path), data_dir=str(path))
    if path.suffix or cfg.dataset.startswith((".", "/", "~")):
        raise UserError(f"--dataset {cfg.dataset}: no such directory. Give an imagefolder directory "
                        f"(class-name subfolders), a Hub dataset id, or one of {sorted(EMBEDDED)}.")
    try:
        return datasets.load_dataset(cfg.dataset, cfg.dataset_config, revision=cfg.dataset_revision)
    except Exception as e:  # datasets raises many types (network, not found, config); all are user-facing
        raise UserError(f"cannot load Hub dataset {cfg.dataset!r} ({type(e).__name__}: {str(e)[:300]}). "
                        "Check the id/--dataset-config and your network, or pass a local imagefolder "
                        f"directory or one of {sorted(EMBEDDED)}.") from None


def folder_builder(path: Path) -> str:
    """'audiofolder' when the first media file found under path is audio, else 'imagefolder'."""
    for file in path.rglob("*"):
        suffix = file.suffix.lower()
        if suffix in AUDIO_SUFFIXES or suffix in IMAGE_SUFFIXES:
            return "audiofolder" if suffix in AUDIO_SUFFIXES else "imagefolder"
    return "imagefolder"


def _pick(kind: str, columns: dict, candidates: list[str], names: tuple, flag: str) -> str:
    """One column of a kind, or a UserError listing the real columns and the flag to set."""
    if len(candidates) == 1:
        return candidates[0]
    named = [c for c in columns if c.lower() in names]
    if len(candidates) == 0 and len(named) == 1:
        return named[0]
    listing = ", ".join(f"{k} ({type(v).__name__})" for k, v in columns.items())
    why = "several candidates " + str(candidates) if candidates else "none found"
    raise UserError(f"cannot tell which column holds the {kind}: {why}. Columns: {listing}. "
                    f"Set {flag} COLUMN.")


def _audio_column(features, cfg: DataConfig) -> str | None:
    """The Audio input column when the data is audio (--audio-column, or Audio features and no Image), else None."""
    import datasets

    audio = [k for k, v in features.items() if isinstance(v, datasets.Audio)]
    has_image = any(isinstance(v, datasets.Image) for v in features.values())
    if cfg.audio_column is None and (not audio or has_image or cfg.image_column):
        return None
    column = cfg.audio_column or _pick("audio", features, audio, AUDIO_NAMES, "--audio-column")
    if not isinstance(features[column], datasets.Audio):
        raise UserError(f"column {column!r} is {features[column]}, not audio; set --audio-column.")
    return column


def detect_columns(features, cfg: DataConfig) -> tuple[str, str]:
    """(input column: image or audio, label column): the flags if given, else by feature type, else by name."""
    import datasets

    for flag, value in (("--image-column", cfg.image_column), ("--audio-column", cfg.audio_column),
                        ("--label-column", cfg.label_column)):
        if value is not None and value not in features:
            raise UserError(f"{flag} {value!r} is not a column; columns: {list(features)}. Set {flag} to one of them.")
    image = _audio_column(features, cfg) or cfg.image_column or _pick(
        "images", features, [k for k, v in features.items() if isinstance(v, datasets.Image)],
        IMAGE_NAMES, "--image-column")
    label = cfg.label_column or _pick(
        "labels", features, [k for k, v in features.items() if isinstance(v, datasets.ClassLabel)],
        LABEL_NAMES, "--label-column")
    if not isinstance(features[image], datasets.Image | datasets.Audio):
        raise UserError(f"column {image!r} is {features[image]}, not an image; set --image-column.")
    return image, label


def split_names(raw, cfg: DataConfig) -> tuple[str, str | None, str | None]:
    """Resolve train/val/test split names against what the source has."""
    have = list(raw)
    for flag, name in (("--train-split", cfg.train_split), ("--val-split", cfg.val_split),
                       ("--test-split", cfg.test_split)):
        if name is not None and name not in raw:
            raise UserError(f"{flag} {name!r} not found; the dataset has splits {have}.")
    val = cfg.val_split or next((s for s in VAL_NAMES if s in raw and s != cfg.train_split), None)
    test = cfg.test_split or ("test" if "test" in raw and cfg.train_split != "test" else None)
    return cfg.train_split, val, test


def encode_labels(splits: dict, label: str) -> list[str]:
    """Cast the label column of every split to one shared ClassLabel; return the label names."""
    import datasets

    feat = splits["train"].features[label]
    if isinstance(feat, datasets.ClassLabel):
        return list(feat.names)
    values = sorted({v for v in splits["train"].unique(label) if v is not None}, key=lambda v: (str(type(v)), v))
    if not values:
        raise UserError(f"label column {label!r} of the train split holds no labels.")
    names = [str(v) for v in values]
    for split_name, ds in splits.items():
        unseen = sorted({str(v) for v in ds.unique(label)} - set(names))
        if unseen:
            raise UserError(f"split {split_name!r} has labels never seen in train: {unseen[:10]}. "
                            "Add training samples of those classes or drop them from that split.")
    class_label = datasets.ClassLabel(names=names)
    index = {v: i for i, v in enumerate(values)}
    for split_name, ds in splits.items():
        ds = ds.map(lambda b: {label: [index[v] for v in b[label]]}, batched=True, desc=f"encode {split_name}")
        splits[split_name] = ds.cast_column(label, class_label)
    return names


def label_array(ds, label: str) -> "np.ndarray":  # noqa: F821
    """The label column as one numpy array (a Column iterates row by row: 100x slower)."""
    import numpy as np

    return np.asarray(ds.select_columns([label]).with_format("numpy")[:][label], dtype=np.int64)


def _holdout(train, label: str, pct: float, seed: int, label_names: list[str]):
    """Stratified train/val split; explains classes too small to stratify."""
    import numpy as np

    counts = np.bincount(label_array(train, label), minlength=len(label_names))
    lonely = [label_names[y] for y, n in enumerate(counts) if n == 1]
    if lonely:
        raise UserError(f"class(es) {lonely[:10]} have only 1 sample, so a stratified validation split is "
                        "impossible. Add samples, remove the class, or give a validation split (--val-split).")
    parts = train.train_test_split(test_size=pct, stratify_by_column=label, seed=seed)
    return parts["train"], parts["test"]


def _cap(ds, n: int | None, label: str, seed: int):
    """A stratified subset of at most n rows (all rows when n is None or larger)."""
    if n is None or n >= len(ds):
        return ds
    try:
        return ds.train_test_split(train_size=n, stratify_by_column=label, seed=seed)["train"]
    except ValueError:  # too few per class to stratify: fall back to a seeded shuffle
        return ds.shuffle(seed=seed).select(range(n))


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


def build_data(cfg: DataConfig, seed: int) -> DataBundle:
    """Load --dataset and return the train/val/test splits the trainer uses."""
    import datasets

    raw = load_source(cfg)
    train_name, val_name, test_name = split_names(raw, cfg)
    splits = {"train": raw[train_name]}
    if val_name:
        splits["val"] = raw[val_name]
    if test_name:
        splits["test"] = raw[test_name]
    for name, ds in splits.items():
        if len(ds) == 0:
            raise UserError(f"split {name!r} of {cfg.dataset} is empty (0 rows); point --{name}-split at a "
                            "split with data.")
    image, label = detect_columns(splits["train"].features, cfg)
    modality = "audio" if isinstance(splits["train"].features[image], datasets.Audio) else "image"
    skipped = 0
    if Path(cfg.dataset).expanduser().is_dir():
        verify = verify_images
        if modality == "audio":
            from trainer.audio_data import verify_audio as verify
        for name in list(splits):
            splits[name], dropped = verify(splits[name], image)
            skipped += dropped
        if skipped:
            print(f"warning: skipped {skipped} unreadable {modality} file(s) in {cfg.dataset}", flush=True)
    label_names = encode_labels(splits, label)
    if "val" not in splits:
        splits["train"], splits["val"] = _holdout(splits["train"], label, cfg.val_pct, seed, label_names)
    splits["train"] = _cap(splits["train"], cfg.max_train_samples, label, seed)
    for name in ("val", "test"):
        if name in splits:
            splits[name] = _cap(splits[name], cfg.max_eval_samples, label, seed)
    # the app's flywheel corrections: train split only, after the holdout and the caps (trainer/extra_data.py)
    extra = add_extra_data(splits, cfg.extra_data, image, label, label_names, modality) if cfg.extra_data else None
    source = {"dataset": cfg.dataset, "config": cfg.dataset_config, "revision": cfg.dataset_revision,
              "splits": {"train": train_name, "val": val_name or f"{train_name} (held out {cfg.val_pct:.0%})",
                         "test": test_name},
              "sizes": {k: len(v) for k, v in splits.items()},
              "fingerprints": {k: v._fingerprint for k, v in splits.items()}}
    if extra is not None:
        source["extra_data"] = extra
    return DataBundle(splits["train"], splits["val"], splits.get("test"), image, label, label_names,
                      source, skipped, modality)
