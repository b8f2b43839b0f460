"""Training state on a branch of the model repo (never main): `--hub-push-state` pushes the pickle-free state
(trainer/engine/portable_state.py's files) after every epoch; `--resume hf-hub:org/name[@branch]` pulls it on
another machine, refusing a branch that holds any pickle-like file before anything is downloaded."""

from __future__ import annotations

import warnings
from pathlib import Path

from trainer.checkpoint.read import parse_ref
from trainer.errors import LOGIN_HINT, UserError
from trainer.hub.push import resolve_token

STATE_BRANCH = "training-state"  # the default branch for --hub-push-state and for --resume hf-hub:org/name
STATE_PREFIX = "state"  # the folder on the branch
# What may run code when loaded: torch.save/pickle formats and friends. Refused anywhere on the branch.
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".npy", ".npz")


def push_state(folder: Path, repo_id: str, token: str | None, branch: str = STATE_BRANCH, step: int = 0):
    """Upload the files of `folder` to <branch>/state/ in one commit (creating repo and branch); never to main."""
    from huggingface_hub import CommitOperationAdd, HfApi

    if branch == "main":
        raise UserError("--hub-state-branch main: training state never goes to main (the served model lives there).")
    token = resolve_token(token)
    if not token:
        raise UserError(f"--hub-push-state needs a Hub token: {LOGIN_HINT}.")
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, exist_ok=True).repo_id
    api.create_branch(repo_id, branch=branch, exist_ok=True)
    ops = [CommitOperationAdd(path_in_repo=f"{STATE_PREFIX}/{p.name}", path_or_fileobj=str(p))
           for p in sorted(folder.iterdir()) if p.is_file()]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*commit a data file.*")
        return api.create_commit(repo_id, operations=ops, revision=branch,
                                 commit_message=f"training state at step {step}")


def pull_state(ref: str, token: str | None, required: tuple[str, ...]) -> Path:
    """Download <branch>/state/ of 'hf-hub:org/name[@branch]' after checking the branch holds no pickle-like file
    and every `required` state file; the local folder."""
    from huggingface_hub import HfApi, snapshot_download

    parsed = parse_ref(ref)  # the checkpoint reader's: one spelling of hf-hub:org/name[@rev] everywhere
    repo_id, branch = parsed.repo_id, parsed.revision or STATE_BRANCH
    token = resolve_token(token)
    api = HfApi(token=token)
    try:
        files = api.list_repo_files(repo_id, revision=branch)
    except Exception as e:  # noqa: BLE001 - any failure to list is reported the same way, with its cause
        raise UserError(f"--resume {ref}: cannot list branch {branch} of {repo_id} ({type(e).__name__}: {e}).") \
            from None
    unsafe = sorted(f for f in files if f.lower().endswith(UNSAFE_SUFFIXES))
    if unsafe:
        raise UserError(f"--resume {ref}: branch {branch} holds file(s) that could run code when loaded "
                        f"({', '.join(unsafe[:5])}); timm-space state is safetensors + JSON only. Nothing was "
                        "downloaded.")
    missing = sorted(set(required) - {f.removeprefix(f"{STATE_PREFIX}/") for f in files})
    if missing:
        raise UserError(f"--resume {ref}: branch {branch} has no training state ({', '.join(missing)} missing "
                        f"under {STATE_PREFIX}/); push it with --hub-push-state.")
    path = snapshot_download(repo_id, revision=branch, allow_patterns=[f"{STATE_PREFIX}/*"], token=token)
    return Path(path) / STATE_PREFIX
