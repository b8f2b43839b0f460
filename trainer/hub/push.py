"""Push a checkpoint to the Hub in one commit (HfApi.create_commit), and every epoch in the background."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from trainer.checkpoint.card import build_card
from trainer.checkpoint.contract import CONFIG, EVAL_DIR, FOLDS_DIR, LOCAL_ONLY, WEIGHTS
from trainer.checkpoint.integrity import restore
from trainer.config import HubConfig
from trainer.errors import LOGIN_HINT, UserError, explain, network_errors, redact_token, register_secret


def resolve_token(token: str | None) -> str | None:
    """--hub-token, else HF_TOKEN, else the cached login (huggingface_hub.get_token)."""
    from huggingface_hub import get_token

    resolved = token or get_token()
    register_secret(resolved)
    return resolved


def check_access(repo_id: str, token: str | None) -> None:
    """Fail before training, not after it: there must be a token, and the Hub must accept it."""
    from huggingface_hub import HfApi

    token = resolve_token(token)
    if not token:
        raise UserError(f"--push-to-hub needs a Hub token: {LOGIN_HINT}.")
    try:
        HfApi(token=token).whoami()
    except network_errors() as e:
        err = explain(e, f"checking the token for {repo_id}", token)
        if getattr(getattr(e, "response", None), "status_code", None) in (401, 403):
            raise err from None
        print(f"warning: {err} Training goes on; the push at the end may fail (it prints a retry command).",
              file=sys.stderr, flush=True)


def checkpoint_files(out: Path) -> list[Path]:
    """Every file of the checkpoint except resume state, scratch dirs and temp files."""
    # so model.onnx and eval/export.json (trainer/export.py) go with the checkpoint when present
    files = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or any(p in LOCAL_ONLY or p.startswith(".") for p in rel.parts[:-1]):
            continue
        if rel.parts[0] == FOLDS_DIR and len(rel.parts) > 2 and rel.parts[2] in LOCAL_ONLY:
            continue
        if rel.name.endswith(".tmp") or rel.name.startswith("."):
            continue
        files.append(path)
    return files


def commit_message(out: Path, prefix: str = "Upload") -> str:
    """Headline metrics in the commit title, e.g. 'Upload resnet18: test accuracy 0.9026, val accuracy 0.9095'."""
    cfg = json.loads((out / CONFIG).read_text())
    metrics_path = out / EVAL_DIR / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    parts = [f"{split} accuracy {metrics[split]['accuracy']:.4f}" for split in ("test", "val")
             if "accuracy" in metrics.get(split, {})]
    return f"{prefix} {cfg.get('architecture', 'model')}" + (": " + ", ".join(parts) if parts else "")


def _operations(out: Path, readme: str | None) -> list:
    """CommitOperationAdd for every checkpoint file; README.md replaced by the Hub-flavoured card."""
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path_in_repo=p.relative_to(out).as_posix(), path_or_fileobj=str(p))
           for p in checkpoint_files(out) if not (readme is not None and p.relative_to(out).as_posix() == "README.md")]
    if readme is not None:
        ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode("utf-8")))
    return ops


def retry_command(out: Path, repo_id: str, revision: str | None, space_id: str | None = None) -> str:
    """The command that pushes this checkpoint again (no token in it)."""
    cmd = f"python -m trainer.hub push {out} --hub-model-id {repo_id}"
    cmd += f" --hub-revision {revision}" if revision else ""
    return cmd + (f" --create-space {space_id}" if space_id else "")


def push_checkpoint(out: Path, repo_id: str, token: str | None = None, private: bool = False,
                    revision: str | None = None, space_id: str | None = None):
    """Create the repo (exist_ok), the branch if asked, and upload the checkpoint in ONE commit; return CommitInfo."""
    from huggingface_hub import HfApi


    out, token = Path(out), resolve_token(token)
    restore(out)  # checks every file against manifest.json: after it, out holds exactly the set it names
    if not (out / CONFIG).exists() or not (out / WEIGHTS).exists():
        raise UserError(f"{out} is not a finished checkpoint (config.json and model.safetensors are missing).")
    if not token:
        raise UserError(f"pushing {out} needs a Hub token: {LOGIN_HINT}.")
    api = HfApi(token=token, library_name="timm", library_version=_version("timm"))
    retry = (f"The checkpoint in {out} is complete and unchanged; push it again with: "
             f"{retry_command(out, repo_id, revision, space_id)}")
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        readme = str(build_card(out, repo_id=repo_id, space_id=space_id))
        # one atomic commit: upload_folder may split a large upload into several commits on a Xet-backed Hub
        with warnings.catch_warnings():  # eval/predictions.parquet is an artifact, not a dataset upload
            warnings.filterwarnings("ignore", message=".*commit a data file.*")
            info = api.create_commit(repo_id, operations=_operations(out, readme),
                                     commit_message=commit_message(out), revision=revision)
    except network_errors() as e:
        raise explain(e, f"pushing {out} to {repo_id}", token, retry) from None
    print(f"pushed {out} to {info.commit_url} (revision {info.oid})", flush=True)
    return info


def _version(pkg: str) -> str:
    """Installed version of a package ('' when absent)."""
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return ""


class EpochPusher:
    """--hub-strategy every_epoch, the loop's on_epoch_end hook: push a servable snapshot of the epoch's model in the
    background. It never blocks or crashes training; a push still running when the next epoch ends skips that one.

    `write_snapshot(dir)` writes the files (the engine gives one that calls checkpoint.write.save_model_files, the
    writer of the final checkpoint too), so the Hub side never reaches into the training loop.
    """

    def __init__(self, hub: HubConfig, scratch: Path, metric: str, write_snapshot: Callable[[Path], None]):
        from huggingface_hub import HfApi

        self.repo_id, self.revision, self.scratch = hub.hub_model_id, hub.hub_revision, scratch
        self.metric, self.write_snapshot = metric, write_snapshot
        self.token = resolve_token(hub.hub_token)
        self.api = HfApi(token=self.token)
        self.future = None
        self.ready = False

    def __call__(self, epoch: int, row: dict) -> bool:
        """After epoch `epoch` (0-based) with its history row: start one background push; False when none started."""
        from huggingface_hub import CommitOperationAdd

        value = row.get(f"val_{self.metric}")
        message = f"Epoch {epoch + 1}: val {self.metric} {value:.4f} (training in progress)"

        if self.future is not None and not self.future.done():
            print(f"hub: epoch {epoch + 1} not pushed, the previous push is still running", flush=True)
            return False
        try:
            if not self.ready:
                self.repo_id = self.api.create_repo(self.repo_id, exist_ok=True).repo_id
                if self.revision:
                    self.api.create_branch(self.repo_id, branch=self.revision, exist_ok=True)
                self.ready = True
            snap = self.scratch / f"epoch_{epoch}"
            snap.mkdir(parents=True, exist_ok=True)
            self.write_snapshot(snap)
            # the bytes are read now, so the snapshot dir can go while the upload runs
            ops = [CommitOperationAdd(path_in_repo=p.relative_to(snap).as_posix(), path_or_fileobj=p.read_bytes())
                   for p in sorted(snap.rglob("*")) if p.is_file()]
            shutil.rmtree(snap, ignore_errors=True)  # held in memory now: no full model left on disk per epoch
            self.future = self.api.create_commit(self.repo_id, operations=ops, commit_message=message,
                                                 revision=self.revision, run_as_future=True)
            self.future.add_done_callback(self._report)
            return True
        except Exception as e:  # noqa: BLE001 — an intermediate push must never stop training
            print(f"hub: epoch {epoch + 1} push failed, training goes on: {redact_token(str(e)[:300], self.token)}",
                  flush=True)
            return False

    def _report(self, future) -> None:
        """Log the background push's outcome (errors included, token redacted)."""
        exc = future.exception()
        if exc is not None:
            print(f"hub: background push failed, training goes on: {redact_token(str(exc)[:300], self.token)}",
                  flush=True)

    def wait(self) -> None:
        """Let a running background push finish before the final one (keeps commit order)."""
        if self.future is not None:
            try:
                self.future.result()
            except Exception:  # noqa: BLE001 — already reported by _report
                pass

