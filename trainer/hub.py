"""Push a checkpoint to the Hub in one commit (HfApi.create_commit); `python -m trainer.hub push DIR` retries one."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from trainer.errors import UserError, exit_on_user_error

NOT_PUSHED = ("state", ".staging", ".hub_snapshot")  # resume state and scratch dirs stay local (GUIDE §3)
LOGIN_HINT = "run `hf auth login`, set HF_TOKEN, or pass --hub-token"


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed Hub call raises: huggingface_hub's HTTP client errors (HfHubHTTPError included) and OSError."""
    import httpx2  # the HTTP client huggingface_hub 2.x is built on

    return httpx2.HTTPError, OSError


def resolve_token(token: str | None) -> str | None:
    """--hub-token, else HF_TOKEN, else the cached login (huggingface_hub.get_token)."""
    from huggingface_hub import get_token

    return token or get_token()


def _redact(text: str, token: str | None) -> str:
    """Never echo a token, even inside an error from the server."""
    return text.replace(token, "***") if token else text


def explain(exc: BaseException, action: str, token: str | None, retry: str = "") -> UserError:
    """Turn a Hub/network failure into one message that says what to do next (token never included)."""
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = os.environ.get("HF_ENDPOINT", "the Hub")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        msg = f"{action}: the Hub rejected the token (401). Check it: {LOGIN_HINT}."
    elif status == 403:
        msg = f"{action}: the token may not write there (403). Use a write token or a namespace you belong to."
    elif isinstance(exc, HfHubHTTPError):
        msg = f"{action}: the Hub answered {status}: {str(exc).splitlines()[0][:300]}"
    else:
        msg = f"{action}: could not reach {endpoint} ({type(exc).__name__}: {str(exc)[:200]})."
    return UserError(_redact(msg + (f" {retry}" if retry else ""), token))


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
    files = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or any(p in NOT_PUSHED or p.startswith(".") for p in rel.parts[:-1]):
            continue
        if rel.parts[0] == "folds" and len(rel.parts) > 2 and rel.parts[2] in NOT_PUSHED:
            continue
        if rel.name.endswith(".tmp") or rel.name.startswith("."):
            continue
        files.append(path)
    return files


def commit_message(out: Path, prefix: str = "Upload") -> str:
    """Headline metrics in the commit title, e.g. 'Upload resnet18: test accuracy 0.9026, val accuracy 0.9095'."""
    cfg = json.loads((out / "config.json").read_text())
    metrics_path = out / "eval" / "metrics.json"
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

    from trainer.card import build_card

    out, token = Path(out), resolve_token(token)
    if not (out / "config.json").exists() or not (out / "model.safetensors").exists():
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
        # one atomic commit: upload_folder may split a large upload into several commits on a Xet Hub (GUIDE §4)
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
    """--hub-strategy every_epoch: upload a snapshot in the background; never blocks or crashes training."""

    def __init__(self, repo_id: str, token: str | None, revision: str | None, scratch: Path):
        from huggingface_hub import HfApi

        self.repo_id, self.revision, self.scratch = repo_id, revision, scratch
        self.token = resolve_token(token)
        self.api = HfApi(token=self.token)
        self.future = None
        self.ready = False

    def __call__(self, epoch: int, write_snapshot: Callable[[Path], None], message: str) -> bool:
        """Start one background push of what write_snapshot writes; skip when the previous one still runs."""
        from huggingface_hub import CommitOperationAdd

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
            write_snapshot(snap)
            # the bytes are read now, so the snapshot dir can be reused while the upload runs
            ops = [CommitOperationAdd(path_in_repo=p.relative_to(snap).as_posix(), path_or_fileobj=p.read_bytes())
                   for p in sorted(snap.rglob("*")) if p.is_file()]
            self.future = self.api.create_commit(self.repo_id, operations=ops, commit_message=message,
                                                 revision=self.revision, run_as_future=True)
            self.future.add_done_callback(self._report)
            return True
        except Exception as e:  # noqa: BLE001 — an intermediate push must never stop training
            print(f"hub: epoch {epoch + 1} push failed, training goes on: {_redact(str(e)[:300], self.token)}",
                  flush=True)
            return False

    def _report(self, future) -> None:
        """Log the background push's outcome (errors included, token redacted)."""
        exc = future.exception()
        if exc is not None:
            print(f"hub: background push failed, training goes on: {_redact(str(exc)[:300], self.token)}",
                  flush=True)

    def wait(self) -> None:
        """Let a running background push finish before the final one (keeps commit order)."""
        if self.future is not None:
            try:
                self.future.result()
            except Exception:  # noqa: BLE001 — already reported by _report
                pass


def publish(hub_cfg, out: Path) -> None:
    """End of training: push the checkpoint, then the Space pinned to the pushed commit when asked."""
    info = push_checkpoint(out, hub_cfg.hub_model_id, hub_cfg.hub_token, hub_cfg.hub_private, hub_cfg.hub_revision,
                           hub_cfg.create_space)
    if hub_cfg.create_space:
        from trainer.space_repo import push_space

        push_space(hub_cfg.create_space, info.repo_url.repo_id, info.oid, hub_cfg.hub_token, hub_cfg.hub_private,
                   hub_cfg.hub_license)


def build_parser() -> argparse.ArgumentParser:
    """`python -m trainer.hub push DIR --hub-model-id org/name` flags."""
    parser = argparse.ArgumentParser(prog="python -m trainer.hub", description="Push a finished checkpoint.")
    sub = parser.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push", help="push a checkpoint dir (state/ stays local) in one commit")
    push.add_argument("checkpoint", help="the training --output-dir")
    push.add_argument("--hub-model-id", required=True, help="org/name")
    push.add_argument("--hub-token", default=None, help="default: HF_TOKEN or the cached login")
    push.add_argument("--hub-private", action="store_true", help="create the repo as private")
    push.add_argument("--hub-revision", default=None, help="branch (created from main if missing)")
    push.add_argument("--create-space", default=None, help="also push a Gradio Space, org/space-name")
    return parser


def main(argv: list[str] | None = None) -> None:
    """CLI: push (or re-push after a failure) a checkpoint and optionally its Space."""
    from trainer.config import HubConfig

    args = build_parser().parse_args(argv)
    license = json.loads((Path(args.checkpoint) / "train_config.json").read_text()).get("hub", {}).get(
        "hub_license") if (Path(args.checkpoint) / "train_config.json").exists() else None
    publish(HubConfig(push_to_hub=True, hub_model_id=args.hub_model_id, hub_token=args.hub_token,
                      hub_private=args.hub_private, hub_revision=args.hub_revision, hub_license=license,
                      create_space=args.create_space), Path(args.checkpoint))


if __name__ == "__main__":
    exit_on_user_error(main)
