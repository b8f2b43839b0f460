"""Where data comes from (an embedded name, a local imagefolder/audiofolder or save_to_disk dir, or a Hub id) and
which columns hold the input and the label."""

from __future__ import annotations

from pathlib import Path

from trainer.config import DataConfig
from trainer.data.builtin import EMBEDDED, load_embedded
from trainer.errors import UserError

VAL_NAMES = ("validation", "valid", "val", "dev")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "fine_label", "tags")
IMAGE_NAMES = ("image", "img", "picture", "pixel_values")
AUDIO_NAMES = ("audio", "sound", "speech", "wav", "file")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".webm"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


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


def dataset_version(cfg: DataConfig, raw=None) -> str | None:
    """What pins the release of --dataset, for the manifest: the commit sha a Hub dataset's revision resolved to,
    an embedded dataset's version, None for a local folder (its split fingerprints identify its content)."""
    if cfg.dataset in EMBEDDED:
        from trainer.data.builtin import embedded_version

        return embedded_version(cfg.dataset)
    if Path(cfg.dataset).expanduser().is_dir():
        return None
    return hub_dataset_sha(cfg.dataset, cfg.dataset_revision, raw)


def hub_dataset_sha(repo_id: str, revision: str | None, raw=None) -> str | None:
    """The commit sha of Hub dataset repo_id that was loaded: the one datasets cached `raw` under (its builder
    cache path ends in <config>/<version>/<commit sha>), else the one `revision` (None: the default branch)
    resolves to now (a streamed dataset has no cache), else None (offline)."""
    import re

    from huggingface_hub import HfApi

    for ds in (raw.values() if hasattr(raw, "values") else [raw] if raw is not None else []):
        for cache in getattr(ds, "cache_files", None) or []:
            found = [part for part in Path(cache["filename"]).parts if re.fullmatch(r"[0-9a-f]{40}", part)]
            if found:
                return found[-1]
    try:
        return HfApi().dataset_info(repo_id, revision=revision, timeout=30).sha
    except Exception:  # noqa: BLE001 - offline, unreachable or gated: no sha to record, training goes on
        return None


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
        "labels", features, [k for k, v in features.items() if isinstance(v, datasets.ClassLabel)
                             or isinstance(getattr(v, "feature", None), datasets.ClassLabel)],  # List(ClassLabel)
        LABEL_NAMES, "--label-column")
    if not isinstance(features[image], datasets.Image | datasets.Audio):
        raise UserError(f"column {image!r} is {features[image]}, not an image; set --image-column.")
    return image, label


