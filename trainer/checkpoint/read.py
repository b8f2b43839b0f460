"""Open a checkpoint — a local dir or `hf-hub:org/name[@revision]` — check it is one of ours, and load it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainer.checkpoint.contract import (
    CONFIG,
    MANIFEST,
    MODEL_PATTERNS,
    MULTI_LABEL,
    SCHEMA_VERSION,
    SERVED_PATTERNS,
    SINGLE_LABEL,
    WEIGHTS,
)
from trainer.checkpoint.integrity import consistent_dir
from trainer.errors import UserError, network_errors

HUB_PREFIX = "hf-hub:"
MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; a head of millions is an attack on the server's memory
MAX_LABEL_CHARS = 200
MAX_INPUT_SIDE = 2048  # px; timm's largest pretrained input sizes are below


@dataclass
class CheckpointRef:
    """Where a checkpoint lives: a Hub repo at a revision, or a local dir."""

    repo_id: str | None = None
    revision: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.repo_id:
            return f"{HUB_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")
        return str(self.path)


def parse_ref(ref: str) -> CheckpointRef:
    """`hf-hub:org/name@rev` (revision optional) or a local directory path."""
    if ref.startswith(HUB_PREFIX):
        repo, _, revision = ref[len(HUB_PREFIX):].partition("@")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise UserError(f"{ref!r}: expected hf-hub:org/name or hf-hub:org/name@revision.")
        return CheckpointRef(repo_id=repo, revision=revision or None)
    path = Path(ref).expanduser()
    if not path.is_dir():
        hint = f" For a Hub model write hf-hub:{ref}." if ref.count("/") == 1 and not path.exists() else ""
        raise UserError(f"checkpoint {ref!r}: no such directory.{hint}")
    return CheckpointRef(path=path)


def _download(ref: CheckpointRef, token: str | None, with_eval: bool) -> Path:
    """snapshot_download of the served files; offline or unreachable → the local cache when it has them."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(ref.repo_id, revision=ref.revision, token=token,
                                      allow_patterns=SERVED_PATTERNS if with_eval else MODEL_PATTERNS))
    except GatedRepoError:
        raise UserError(f"{ref}: the repo is gated; accept its terms on the Hub and pass a token.") from None
    except RepositoryNotFoundError:
        raise UserError(f"{ref}: repository not found. Check the id; if it is private, log in (`hf auth login`) "
                        "or set HF_TOKEN.") from None
    except RevisionNotFoundError:
        raise UserError(f"{ref}: revision {ref.revision!r} not found (use a branch, tag or commit sha).") from None
    except LocalEntryNotFoundError:
        raise UserError(f"{ref}: the Hub cannot be reached and the model is not in the local cache "
                        "(HF_HOME). Connect once to download it, or pass a local checkpoint dir.") from None
    except network_errors() as e:
        raise UserError(f"{ref}: download failed ({type(e).__name__}: {str(e)[:200]}).") from None


def _check_bounds(cfg: dict, labels, where: str) -> None:
    """A config.json from a repo someone else controls: refuse sizes that would cost the server memory or time."""
    import math

    from trainer.config import AudioConfig

    if not isinstance(labels, list) or not 2 <= len(labels) <= MAX_CLASSES or not all(
            isinstance(x, str) and 0 < len(x) <= MAX_LABEL_CHARS for x in labels):
        raise UserError(f"{where}: label_names must be 2 to {MAX_CLASSES:,} strings of 1 to {MAX_LABEL_CHARS} "
                        "characters; this config.json is not one the trainer writes.")
    size = (cfg.get("pretrained_cfg") or {}).get("input_size")
    if size is not None and not (isinstance(size, list) and len(size) == 3 and all(
            isinstance(v, int) and v > 0 for v in size) and size[0] <= 4 and max(size[1:]) <= MAX_INPUT_SIDE):
        raise UserError(f"{where}: input_size {str(size)[:60]} is out of bounds (channels <= 4, sides <= "
                        f"{MAX_INPUT_SIDE} px).")
    t = cfg.get("temperature", 1.0)
    if t is not None and not _numbers([t], 1, 0.01, 100):
        raise UserError(f"{where}: temperature {str(t)[:30]} is out of bounds (0.01 to 100).")
    _check_task(cfg, len(labels), where)
    ood = cfg.get("ood")
    if ood is not None and not (isinstance(ood, dict) and _numbers([ood.get("threshold")], 1, -math.inf, math.inf)):
        raise UserError(f"{where}: the `ood` block of config.json needs a finite number `threshold`.")
    if cfg.get("modality") == "audio":
        try:
            AudioConfig.from_block(cfg["audio"])  # the trainer's own checks: rate, clip, mels, frames
        except (UserError, TypeError, ValueError) as e:
            raise UserError(f"{where}: the `audio` block of config.json is out of bounds: {str(e)[:300]}") from None


def _numbers(values, n: int, lo: float, hi: float) -> bool:
    """Whether `values` is a list of n finite numbers within [lo, hi] (booleans are not numbers here)."""
    import math

    return isinstance(values, list) and len(values) == n and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi for v in values)


def _check_task(cfg: dict, n: int, where: str) -> None:
    """`task` (schema 6) and, for a multi-label model, its per-class `thresholds` and Platt `calibration`."""
    from trainer.evaluation.probabilities import PLATT, PLATT_BOUNDS

    task = cfg.get("task", SINGLE_LABEL)
    if task not in (SINGLE_LABEL, MULTI_LABEL):
        raise UserError(f"{where}: unknown task {str(task)[:40]!r} (expected {SINGLE_LABEL} or {MULTI_LABEL}).")
    if task != MULTI_LABEL:
        return
    if "thresholds" in cfg and not _numbers(cfg["thresholds"], n, 0.0, 1.0):
        raise UserError(f"{where}: `thresholds` must be {n} probabilities in [0, 1], one per class.")
    calibration = cfg.get("calibration")
    if calibration is not None and not (isinstance(calibration, dict) and calibration.get("method") == PLATT
                                        and _numbers(calibration.get("scale"), n, *PLATT_BOUNDS["scale"])
                                        and _numbers(calibration.get("bias"), n, *PLATT_BOUNDS["bias"])):
        raise UserError(f"{where}: the `calibration` block must be method {PLATT!r} with {n} scales in "
                        f"{PLATT_BOUNDS['scale']} and {n} biases in {PLATT_BOUNDS['bias']}.")


def check_checkpoint(path: Path, where: str) -> dict:
    """config.json of one of our checkpoints, or a clear error saying why this one is not."""
    cfg_path = path / CONFIG
    if not cfg_path.exists() or not (path / WEIGHTS).exists():
        raise UserError(f"{where} is not a timm checkpoint: config.json and model.safetensors are needed "
                        "(train one with trainer/train.py).")
    try:
        cfg = json.loads(cfg_path.read_text())
    except ValueError as e:
        raise UserError(f"{where}: config.json is not valid JSON ({e}).") from None
    labels = cfg.get("label_names") or cfg.get("pretrained_cfg", {}).get("label_names")
    if not cfg.get("architecture") or not labels:
        raise UserError(f"{where} is a timm checkpoint without label_names: not trained by timm-space, "
                        "so the app cannot name its classes.")
    if cfg.get("num_classes") not in (None, len(labels)):
        raise UserError(f"{where}: num_classes {cfg.get('num_classes')} != {len(labels)} label_names.")
    if cfg.get("modality", "image") not in ("image", "audio"):
        raise UserError(f"{where}: unknown modality {cfg.get('modality')!r} (expected image or audio).")
    if cfg.get("modality") == "audio" and not isinstance(cfg.get("audio"), dict):
        raise UserError(f"{where}: an audio checkpoint without the `audio` front-end block in config.json; "
                        "retrain it with trainer/train.py (checkpoint schema 2).")
    _check_bounds(cfg, labels, where)
    manifest = path / MANIFEST
    version = json.loads(manifest.read_text()).get("schema_version", 1) if manifest.exists() else 1
    if version > SCHEMA_VERSION:
        raise UserError(f"{where} was written with checkpoint schema {version}; this code reads up to "
                        f"{SCHEMA_VERSION}. Update timm-space.")
    return {**cfg, "label_names": list(labels)}


def open_checkpoint(ref: str, token: str | None = None, with_eval: bool = True) -> tuple[Path, dict]:
    """(local dir holding the files, checked config) for a local dir or an hf-hub: reference."""
    parsed = parse_ref(ref)
    path = parsed.path if parsed.path is not None else _download(parsed, token, with_eval)
    path = consistent_dir(path, str(parsed))  # the set manifest.json names, even after an interrupted write
    return path, check_checkpoint(path, str(parsed))


def load_model(path: Path):
    """The timm model in eval mode, loaded from a checked local dir (safetensors only)."""
    import timm

    return timm.create_model(f"local-dir:{path}", pretrained=True).eval()
