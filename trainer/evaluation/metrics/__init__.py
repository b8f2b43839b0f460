"""Our own `evaluate` modules (the Hub copies are unreachable offline), loaded by absolute folder path."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import evaluate

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = tuple(sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file()))


@cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """Cached `evaluate.load` of trainer/metrics/<name> by absolute path: offline, from any cwd, in memory."""
    import evaluate  # deferred: importing evaluate/datasets takes seconds

    path = METRICS_DIR / name
    if not name.isidentifier() or not (path / f"{name}.py").is_file():
        raise ValueError(f"no metric module {name!r} in {METRICS_DIR} (have {', '.join(METRIC_NAMES)})")
    # a local folder never touches the Hub; evaluate copies the script into HF_MODULES_CACHE and imports it
    # from there. keep_in_memory avoids writing (and file-locking) an arrow file under HF_METRICS_CACHE
    # on every compute.
    return evaluate.load(str(path), keep_in_memory=True)
