"""Writing a bench result: bench/results/<stem>_<date>.json, printed too."""

from __future__ import annotations

import json
from pathlib import Path


def save_result(result: dict, out: Path, stem: str) -> Path:
    """Write result (which carries its "date") as out/<stem>_<date>.json and print it; return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}_{result['date']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2), f"\nwritten to {path}", flush=True)
    return path
