"""Our own `evaluate` modules (the Hub copies are unreachable offline), loaded by folder path."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def load_metric(name: str):
    """`evaluate.load` of trainer/metrics/<name> by absolute path: works offline and from any cwd."""
    import evaluate

    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise ValueError(f"no metric module {name!r} in {METRICS_DIR}")
    return evaluate.load(str(path))
