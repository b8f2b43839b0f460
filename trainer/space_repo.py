"""`--create-space org/name`: push a Gradio Space (app.py, space/, the trainer modules they import) serving a model."""

from __future__ import annotations

import ast
import json
from importlib import metadata
from pathlib import Path

from trainer.errors import UserError

REPO = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
# What the app needs at run time. gradio itself is NOT listed: a Space installs it from `sdk_version`.
SPACE_PACKAGES = ("torch", "torchvision", "timm", "huggingface_hub", "safetensors", "torchcodec", "soundfile",
                  "matplotlib", "pyyaml", "numpy", "pillow", "pyarrow", "pandas")
SPACE_CONFIG = "space_config.json"  # the model (and revision) this Space serves; MODEL_ID env vars override it


def _pins() -> dict[str, str]:
    """name → exact pin from requirements.txt (lower-case names)."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
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


def app_files(root: Path = REPO) -> list[str]:
    """app.py, space/*.py and every trainer module they import (transitively), as repo-relative paths."""
    files = {"app.py", *(p.relative_to(root).as_posix() for p in (root / "space").glob("*.py"))}
    todo = sorted(files)
    while todo:
        tree = ast.parse((root / todo.pop()).read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                if name.split(".")[0] not in ("trainer", "space"):
                    continue
                path = name.replace(".", "/")
                for candidate in (f"{path}.py", f"{path}/__init__.py"):
                    if (root / candidate).exists() and candidate not in files:
                        files.add(candidate)
                        todo.append(candidate)
    for pkg in ("trainer", "space"):
        if any(f.startswith(pkg + "/") for f in files):
            files.add(f"{pkg}/__init__.py")
    return sorted(files)


def space_readme(space_id: str, model_id: str, license: str | None) -> str:
    """Space README: the front matter a Space needs (sdk, sdk_version = our gradio pin, app_file, models)."""
    title = space_id.split("/")[-1]
    front = {"title": title, "emoji": "🔎", "colorFrom": "blue", "colorTo": "green", "sdk": "gradio",
             "sdk_version": _pins()["gradio"], "app_file": "app.py", "python_version": PYTHON_VERSION,
             "models": [model_id], "pinned": False, "license": license or "apache-2.0"}
    import yaml

    return (f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}---\n\n# {title}\n\n"
            f"Classifies with [{model_id}](https://huggingface.co/{model_id}) (pinned revision in `{SPACE_CONFIG}`). "
            "Built with timm-space: image, audio and validation-metrics tabs.\n\nSet the Space variables "
            "`MODEL_ID` / `MODEL_REVISION` to serve another model without editing files.\n")


def space_files(space_id: str, model_id: str, revision: str, license: str | None = None) -> dict[str, bytes]:
    """Every file of the Space, path → bytes."""
    files = {path: (REPO / path).read_bytes() for path in app_files()}
    files["README.md"] = space_readme(space_id, model_id, license).encode()
    files["requirements.txt"] = space_requirements().encode()
    files["packages.txt"] = b"ffmpeg\n"  # torchcodec decodes audio through FFmpeg's shared libraries
    config = {"model": f"hf-hub:{model_id}@{revision}", "model_id": model_id, "revision": revision}
    files[SPACE_CONFIG] = (json.dumps(config, indent=2) + "\n").encode()
    return files


def push_space(space_id: str, model_id: str, revision: str, token: str | None = None, private: bool = False,
               license: str | None = None):
    """Create the Space repo (gradio SDK) and upload its files in one commit; return CommitInfo."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from trainer.hub import explain, network_errors, resolve_token

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
        retry = f"The model is pushed; create the Space again with: python -m trainer.space_repo {space_id} " \
                f"--model hf-hub:{model_id}@{revision}"
        raise explain(e, f"creating the Space {space_id}", token, retry) from None
    print(f"Space {space_id} serves {model_id}@{revision[:12]}: {info.commit_url}", flush=True)
    return info


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m trainer.space_repo org/space --model hf-hub:org/name@rev` (re)creates a Space."""
    import argparse

    from trainer.reader import parse_ref

    parser = argparse.ArgumentParser(prog="python -m trainer.space_repo", description=main.__doc__)
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
    from trainer.errors import exit_on_user_error

    exit_on_user_error(main)
