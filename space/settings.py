"""Which checkpoints the app serves: CLI flags, then Space variables, then space_config.json, then the local demos."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainer.checkpoint.contract import SPACE_CONFIG
from trainer.checkpoint.read import HUB_PREFIX
from trainer.errors import CLIParser

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = "outputs/fashion-mnist-lite0"  # what `make demo` trains
DEFAULT_AUDIO = "outputs/spoken-digits"
NO_IMAGE_MODEL = ("No image model configured: train one with `make demo` or pass --model "
                  "(a checkpoint dir or hf-hub:org/name[@revision]), or set MODEL_ID.")
# The repo itself is a valid Space: opened there without MODEL_ID (and without space_config.json) it says what to set.
NO_MODEL_ON_SPACE = ("No {kind} model configured for this Space: set the Space variable {var} (Settings → Variables "
                     "and secrets) to a model repo, org/name or hf-hub:org/name[@revision], e.g. one pushed by "
                     "`trainer/train.py --push-to-hub`; then restart the Space.")
NO_AUDIO_MODEL = ("No audio model configured: pass --audio-model (a checkpoint dir or hf-hub:org/name[@revision]) "
                  "or set AUDIO_MODEL_ID.")
MAX_FILE_SIZE = "200mb"  # gradio refuses larger uploads before they reach a handler (a 60-min 16 kHz WAV is 115 MB)
DELETE_CACHE_S = 3600  # uploads and outputs in gradio's cache are deleted after an hour, checked hourly
FLYWHEEL_MAX_FILES = 1000  # caps of the corrections folder (space/flywheel.py), unless set
FLYWHEEL_MAX_MB = 500.0
FLYWHEEL_QUOTA = 30  # corrections per client per hour


@dataclass
class ModelChoice:
    """A checkpoint reference (None: not configured) and where it came from, for the status line."""

    ref: str | None = None
    source: str = "not configured"


@dataclass
class Settings:
    """Everything app.py needs: the two models and the server options."""

    image: ModelChoice = field(default_factory=ModelChoice)
    audio: ModelChoice = field(default_factory=ModelChoice)
    server_name: str | None = None
    server_port: int | None = None
    share: bool = False
    flywheel_dir: str | None = None  # where "Wrong? Pick the right label" stores corrections; None: off
    flywheel_max_files: int = FLYWHEEL_MAX_FILES
    flywheel_max_mb: float = FLYWHEEL_MAX_MB
    flywheel_quota: int = FLYWHEEL_QUOTA
    on_space: bool = False  # running as a Hugging Face Space (SPACE_ID set): its disk is lost on restart
    max_file_size: str = MAX_FILE_SIZE
    delete_cache_s: int = DELETE_CACHE_S  # 0: keep every upload until the server restarts

    def launch_options(self) -> dict:
        """The keyword arguments of demo.launch() that bound what a caller can make the server store."""
        # show_error: gradio's own refusals (a payload path it will not move, a malformed FileData) reach an API
        # caller as their message instead of a bare error; our handlers' messages are already sanitised gr.Errors
        return {"server_name": self.server_name, "server_port": self.server_port, "share": self.share,
                "max_file_size": self.max_file_size, "show_error": True}


def build_parser() -> argparse.ArgumentParser:
    """The app's flags (the server ones default to gradio's own GRADIO_SERVER_NAME/PORT handling)."""
    parser = CLIParser(description="Serve timm-space checkpoints in a Gradio app.")
    parser.add_argument("--model", help="image checkpoint: a local dir or hf-hub:org/name[@revision]")
    parser.add_argument("--audio-model", help="audio checkpoint: a local dir or hf-hub:org/name[@revision]")
    parser.add_argument("--server-name", help="interface to bind, e.g. 0.0.0.0 (default 127.0.0.1)")
    parser.add_argument("--server-port", type=int, help="port (default 7860, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a public share link")
    parser.add_argument("--max-file-size", help=f"largest upload gradio accepts, e.g. 50mb (env MAX_FILE_SIZE; "
                        f"default {MAX_FILE_SIZE})")
    parser.add_argument("--delete-cache", type=int, help="delete uploads older than this many seconds, checked as "
                        f"often (env DELETE_CACHE; 0 = never; default {DELETE_CACHE_S})")
    parser.add_argument("--flywheel-dir", help="store user corrections (input + right label) in this folder, "
                        "imagefolder layout, for trainer/train.py --extra-data (env FLYWHEEL_DIR; default: off)")
    parser.add_argument("--flywheel-max-files", type=int, help="cap on stored corrections (env FLYWHEEL_MAX_FILES; "
                        f"default {FLYWHEEL_MAX_FILES})")
    parser.add_argument("--flywheel-max-mb", type=float, help="cap on the corrections folder's size in MB "
                        f"(env FLYWHEEL_MAX_MB; default {FLYWHEEL_MAX_MB:g})")
    parser.add_argument("--flywheel-quota", type=int, help="corrections one client may store per hour (env "
                        f"FLYWHEEL_QUOTA; default {FLYWHEEL_QUOTA}); the client is the first X-Forwarded-For hop "
                        "on a Space, else the connecting address")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Our flags from argv; unknown arguments are ignored so that `gradio app.py` and test runners still work."""
    args, _unknown = build_parser().parse_known_args(argv)
    return args


def _hub_ref(value: str) -> str:
    """A Space variable may be a bare `org/name`: that means the Hub unless such a local dir exists."""
    if value.startswith(HUB_PREFIX) or Path(value).expanduser().exists() or value.count("/") != 1:
        return value
    return HUB_PREFIX + value


def _with_revision(ref: str, revision: str | None, replace: bool) -> str:
    """Apply MODEL_REVISION to a Hub reference: added when it has none; `replace` also overrides a pinned one."""
    if not revision or not ref.startswith(HUB_PREFIX) or ("@" in ref and not replace):
        return ref
    return ref.split("@", 1)[0] + "@" + revision


def _space_config(root: Path) -> dict:
    """space_config.json beside app.py ({} when absent or unreadable: the next fallback applies)."""
    path = root / SPACE_CONFIG
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _default(root: Path, rel: str) -> ModelChoice:
    """The locally trained demo checkpoint if it is there."""
    path = root / rel
    if (path / "config.json").is_file():
        return ModelChoice(str(path), f"local demo checkpoint {rel}")
    return ModelChoice()


def _env(env: Mapping[str, str], name: str) -> str | None:
    """A non-empty environment variable (a Space may define a variable and leave it empty)."""
    value = env.get(name, "").strip()
    return value or None


def resolve(args: argparse.Namespace, env: Mapping[str, str] | None = None, root: Path = ROOT) -> Settings:
    """The models to serve, first match wins: flag, environment (Space variables), space_config.json, demo dir."""
    env = os.environ if env is None else env
    space = _space_config(root)
    revision = _env(env, "MODEL_REVISION")
    if args.model:
        image = ModelChoice(args.model, "--model")
    elif model_id := _env(env, "MODEL_ID"):
        image = ModelChoice(_with_revision(_hub_ref(model_id), revision, replace=False), "MODEL_ID")
    elif space.get("model"):
        image = ModelChoice(_with_revision(space["model"], revision, replace=True), SPACE_CONFIG)
    else:
        image = _default(root, DEFAULT_IMAGE)
    if args.audio_model:
        audio = ModelChoice(args.audio_model, "--audio-model")
    elif audio_id := _env(env, "AUDIO_MODEL_ID"):
        audio = ModelChoice(_hub_ref(audio_id), "AUDIO_MODEL_ID")
    elif space.get("audio_model"):
        audio = ModelChoice(space["audio_model"], SPACE_CONFIG)
    else:
        audio = _default(root, DEFAULT_AUDIO)
    return Settings(image=image, audio=audio, server_name=args.server_name, server_port=args.server_port,
                    share=args.share, **_flywheel(args, env), **_storage(args, env))


def _storage(args: argparse.Namespace, env: Mapping[str, str]) -> dict:
    """--max-file-size / MAX_FILE_SIZE and --delete-cache / DELETE_CACHE, checked now (a bad value stops the app)."""
    import re

    size = getattr(args, "max_file_size", None) or _env(env, "MAX_FILE_SIZE") or MAX_FILE_SIZE
    if not re.fullmatch(r"\d+\s*(b|kb|mb|gb)", size.strip().lower()):
        raise SystemExit(f"error: --max-file-size / MAX_FILE_SIZE must look like 50mb or 2gb, got {size!r}.")
    seconds = getattr(args, "delete_cache", None)
    seconds = seconds if seconds is not None else _env(env, "DELETE_CACHE")
    try:
        seconds = DELETE_CACHE_S if seconds is None else int(seconds)
    except ValueError:
        raise SystemExit(f"error: --delete-cache / DELETE_CACHE must be whole seconds, got {seconds!r}.") from None
    if seconds < 0:
        raise SystemExit(f"error: --delete-cache / DELETE_CACHE must be >= 0, got {seconds}.")
    return {"max_file_size": size.strip().lower().replace(" ", ""), "delete_cache_s": seconds}


def _cap(args: argparse.Namespace, env: Mapping[str, str], flag: str, cast: type, default: float) -> float:
    """A flywheel cap from its flag, else its variable (FLAG_NAME), else the default; a bad value stops the app."""
    value = getattr(args, flag, None)
    name = flag.upper()
    value = _env(env, name) if value is None else value
    if value is None:
        return default
    try:
        number = cast(value)
    except ValueError:
        raise SystemExit(f"error: --{flag.replace('_', '-')} / {name} must be a number, got {value!r}.") from None
    if number <= 0:
        raise SystemExit(f"error: --{flag.replace('_', '-')} / {name} must be > 0, got {value!r}.")
    return number


def _flywheel(args: argparse.Namespace, env: Mapping[str, str]) -> dict:
    """Flywheel settings: off unless --flywheel-dir or FLYWHEEL_DIR names a folder (on a Space too: opt-in only)."""
    return {"flywheel_dir": getattr(args, "flywheel_dir", None) or _env(env, "FLYWHEEL_DIR"),
            "flywheel_max_files": int(_cap(args, env, "flywheel_max_files", int, FLYWHEEL_MAX_FILES)),
            "flywheel_max_mb": _cap(args, env, "flywheel_max_mb", float, FLYWHEEL_MAX_MB),
            "flywheel_quota": int(_cap(args, env, "flywheel_quota", int, FLYWHEEL_QUOTA)),
            "on_space": _env(env, "SPACE_ID") is not None}
