"""`--create-space org/name`: push a Gradio Space (app.py, space/, the trainer pieces it reads checkpoints with) serving
a model pinned to the pushed commit."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from trainer.checkpoint.contract import MODEL_FILES, SPACE_CONFIG, SPACE_SOURCES
from trainer.checkpoint.read import parse_ref
from trainer.errors import CLIParser, UserError, exit_on_user_error, explain, network_errors
from trainer.hub.push import resolve_token

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # holds trainer/ and space/: the checkout, or site-packages
DIST = "timm-space"
# Repo-root files of the Space. A package can only carry data from inside its folders and these stay at the root
# (the repo itself is a Space), so pyproject.toml's [tool.setuptools.data-files] installs them with the wheel
# under <prefix>/share/timm-space; the dist's RECORD says where that is for any install scheme.
TEMPLATE = ("app.py", "requirements.txt", "packages.txt")
TEMPLATE_DIR = ("share", "timm-space")
PYTHON_VERSION = "3.11"
# What the app needs at run time. gradio itself is NOT listed: a Space installs it from `sdk_version`.
SPACE_PACKAGES = ("torch", "torchvision", "timm", "huggingface_hub", "safetensors", "torchaudio", "torchcodec", "soxr",
                  "matplotlib", "pyyaml", "numpy", "pillow", "pyarrow", "pandas")


def template_file(name: str) -> Path:
    """A repo-root file of the Space (TEMPLATE): the checkout's own, else the copy installed with the wheel."""
    if (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / name).is_file():
        return SOURCE_ROOT / name  # a checkout (or an editable install of one): the originals, as edited
    # the dist-info beside the imported packages, not whichever timm-space comes first on sys.path
    dist = next(iter(metadata.distributions(name=DIST, path=[str(SOURCE_ROOT)])), None)
    for entry in (dist.files or []) if dist else []:
        if entry.parts[-3:] == (*TEMPLATE_DIR, name) and (path := Path(entry.locate())).is_file():
            return path
    raise UserError(f"{name} of the Space is neither in a timm-space checkout ({SOURCE_ROOT}) nor installed with "
                    f"the {DIST} distribution (<prefix>/{'/'.join(TEMPLATE_DIR)}): reinstall it from a checkout "
                    "with `pip install --no-deps .`, or run from the checkout.")


def _pins() -> dict[str, str]:
    """name → exact pin from requirements.txt (lower-case names)."""
    pins = {}
    for line in template_file("requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def space_requirements() -> str:
    """requirements.txt of the Space: our exact pins, else the installed version (for transitive packages)."""
    pins, lines = _pins(), []
    for name in SPACE_PACKAGES:
        key = name.replace("_", "-")
        version = pins.get(key) or metadata.version(name)
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def app_files(root: Path = SOURCE_ROOT) -> list[str]:
    """The Space's code: SPACE_SOURCES of the checkpoint contract, folders whole (minus caches), repo-relative."""
    files = set()
    for source in SPACE_SOURCES:
        path = root / source
        if source in TEMPLATE:  # app.py: read through template_file, from the checkout or the wheel
            files.add(source)
            continue
        if not path.exists():  # a partial Space would push fine and fail on its first import
            raise UserError(f"{source} of the Space's code is missing under {root}: restore it in the checkout, "
                            "or reinstall timm-space.")
        found = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        files.update(p.relative_to(root).as_posix() for p in found if "__pycache__" not in p.parts)
    return sorted(files)


def space_card(space_id: str, model_id: str, revision: str, license: str | None) -> str:
    """The Space's README.md: huggingface_hub SpaceCard metadata (sdk_version = our gradio pin; the model files
    preloaded at build time, pinned to the pushed commit) and a short body."""
    from huggingface_hub import SpaceCard, SpaceCardData

    title = space_id.split("/")[-1]
    data = SpaceCardData(title=title, emoji="🔎", colorFrom="blue", colorTo="green", sdk="gradio",
                         sdk_version=_pins()["gradio"], app_file="app.py", python_version=PYTHON_VERSION,
                         models=[model_id], pinned=False, license=license or "apache-2.0",
                         short_description=f"timm classifier demo: {model_id}"[:60],
                         preload_from_hub=[f"{model_id} {','.join(MODEL_FILES)} {revision}"])
    body = (f"# {title}\n\nClassifies with [{model_id}](https://huggingface.co/{model_id}) (pinned revision in "
            f"`{SPACE_CONFIG}`). Built with timm-space: image, audio and validation-metrics tabs.\n\nSet the Space "
            "variables `MODEL_ID` / `MODEL_REVISION` to serve another model without editing files.\n")
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def space_files(space_id: str, model_id: str, revision: str, license: str | None = None) -> dict[str, bytes]:
    """Every file of the Space, path → bytes."""
    files = {path: (template_file(path) if path in TEMPLATE else SOURCE_ROOT / path).read_bytes()
             for path in app_files()}
    files["README.md"] = space_card(space_id, model_id, revision, license).encode()
    files["requirements.txt"] = space_requirements().encode()
    files["packages.txt"] = template_file("packages.txt").read_bytes()  # ffmpeg: torchcodec decodes audio with it
    config = {"model": f"hf-hub:{model_id}@{revision}", "model_id": model_id, "revision": revision}
    files[SPACE_CONFIG] = (json.dumps(config, indent=2) + "\n").encode()
    return files


def push_space(space_id: str, model_id: str, revision: str, token: str | None = None, private: bool = False,
               license: str | None = None):
    """Create the Space repo (gradio SDK) and upload its files in one commit; return CommitInfo."""
    from huggingface_hub import CommitOperationAdd, HfApi


    token = resolve_token(token)
    if not token:
        raise UserError("creating a Space needs a Hub token: run `hf auth login` or set HF_TOKEN.")
    api = HfApi(token=token)
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b)
           for p, b in space_files(space_id, model_id, revision, license).items()]
    try:
        space_id = api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private,
                                   exist_ok=True).repo_id
        info = api.create_commit(space_id, repo_type="space", operations=ops,
                                 commit_message=f"Serve {model_id}@{revision[:12]}")
    except network_errors() as e:
        retry = f"The model is pushed; create the Space again with: python -m trainer.hub.space_repo {space_id} " \
                f"--model hf-hub:{model_id}@{revision}"
        raise explain(e, f"creating the Space {space_id}", token, retry) from None
    print(f"Space {space_id} serves {model_id}@{revision[:12]}: {info.commit_url}", flush=True)
    return info


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m trainer.hub.space_repo org/space --model hf-hub:org/name@rev` (re)creates a Space."""


    parser = CLIParser(prog="python -m trainer.hub.space_repo", description=main.__doc__)
    parser.add_argument("space_id", help="org/space-name")
    parser.add_argument("--model", required=True, help="hf-hub:org/name@revision (pin a commit sha)")
    parser.add_argument("--hub-token", default=None, help="default: HF_TOKEN or the cached login")
    parser.add_argument("--hub-private", action="store_true", help="create the Space as private")
    args = parser.parse_args(argv)
    ref = parse_ref(args.model)
    if ref.repo_id is None:
        raise UserError("--model must be a Hub model (hf-hub:org/name@revision): a Space cannot read a local dir.")
    push_space(args.space_id, ref.repo_id, ref.revision or "main", args.hub_token, args.hub_private)


if __name__ == "__main__":
    exit_on_user_error(main)
