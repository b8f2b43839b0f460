"""End of training: push the checkpoint, then its Space; `python -m trainer.hub push DIR` retries."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.checkpoint.card import checkpoint_licence
from trainer.config import HubConfig
from trainer.errors import CLIParser
from trainer.hub.push import push_checkpoint
from trainer.hub.space_repo import push_space


def publish(hub_cfg, out: Path) -> None:
    """End of training: push the checkpoint, then the Space pinned to the pushed commit when asked."""
    info = push_checkpoint(out, hub_cfg.hub_model_id, hub_cfg.hub_token, hub_cfg.hub_private, hub_cfg.hub_revision,
                           hub_cfg.create_space)
    if hub_cfg.create_space:
        push_space(hub_cfg.create_space, info.repo_url.repo_id, info.oid, hub_cfg.hub_token, hub_cfg.hub_private,
                   checkpoint_licence(out))  # the model card's: --hub-license, else the initial weights' licence


def build_parser() -> argparse.ArgumentParser:
    """`python -m trainer.hub push DIR --hub-model-id org/name` flags."""
    parser = CLIParser(prog="python -m trainer.hub", description="Push a finished checkpoint.")
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
    args = build_parser().parse_args(argv)
    publish(HubConfig(push_to_hub=True, hub_model_id=args.hub_model_id, hub_token=args.hub_token,
                      hub_private=args.hub_private, hub_revision=args.hub_revision,
                      create_space=args.create_space), Path(args.checkpoint))

