"""Where derived, re-creatable files live (embedded datasets, converted weights)."""

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """$TIMM_SPACE_CACHE (default ~/.cache/timm-space) joined with parts; created on demand."""
    root = Path(os.environ.get("TIMM_SPACE_CACHE", "~/.cache/timm-space")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
