"""The `timm-space-app` console script: the app of app.py, launched from an installed package (any working dir)."""

from __future__ import annotations

import sys

from space.settings import parse_args, resolve
from space.ui import build_demo


def cli(argv: list[str] | None = None) -> None:
    """Parse the app's flags (as app.py does), build the layout and serve it."""
    settings = resolve(parse_args(sys.argv[1:] if argv is None else argv))
    build_demo(settings).launch(**settings.launch_options())
