"""Whether a checkpoint is undertrained, by one stated rule, for everything that serves it (the app's status lines,
the model card, `make demo`):

- the time budget's deadline stopped training before any plan was made (it never measured what it could afford), or
- on its evaluated split the model does barely better than a constant answer: single-label accuracy below the
  majority-class rate + 5 points; multi-label mAP below the mean class prevalence (a random ranking's AP) + 5 points.

    python -m trainer.checkpoint.quality DIR [DIR ...]   # one line per checkpoint
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MARGIN = 0.05  # points above the constant answer a trained model must reach


def undertrained(metrics: dict, per_class: dict, manifest: dict) -> str | None:
    """Why the model is undertrained, or None: from eval/metrics.json, eval/per_class.json and manifest.json."""
    budget = manifest.get("time_budget") if isinstance(manifest, dict) else None
    if isinstance(budget, dict) and budget.get("stopped_before_plan"):
        return "the time budget's deadline stopped training before any plan was made"
    split = metrics.get("primary_split", "test") if isinstance(metrics, dict) else None
    m = metrics.get(split) if split else None
    supports = [float(v.get("support", 0)) for v in per_class.values() if isinstance(v, dict)] \
        if isinstance(per_class, dict) else []
    if not isinstance(m, dict) or not supports or not sum(supports):
        return None  # nothing to judge by (an older or partial checkpoint)
    if "map" in m:
        samples = float(m.get("num_samples") or 0)
        if not samples:
            return None
        baseline = sum(supports) / len(supports) / samples  # the mean prevalence: a random ranking's mAP
        if m["map"] < baseline + MARGIN:
            return (f"{split} mAP {m['map']:.3f} is below the mean class prevalence {baseline:.3f} + "
                    f"{MARGIN * 100:.0f} points")
        return None
    majority = max(supports) / sum(supports)
    if m.get("accuracy", 1.0) < majority + MARGIN:
        return (f"{split} accuracy {m['accuracy']:.3f} is below the majority-class rate {majority:.3f} + "
                f"{MARGIN * 100:.0f} points")
    return None


def checkpoint_verdict(path: Path) -> str | None:
    """undertrained() of a checkpoint directory's own files (None when they are missing or unreadable)."""
    def read(name: str) -> dict:
        try:
            value = json.loads((path / name).read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    return undertrained(read("eval/metrics.json"), read("eval/per_class.json"), read("manifest.json"))


def main(argv: list[str] | None = None) -> int:
    """Print each checkpoint's verdict; exit 0 (it informs, it does not fail a build)."""
    for arg in argv if argv is not None else sys.argv[1:]:
        path = Path(arg)
        if not (path / "manifest.json").is_file():
            print(f"{path}: no checkpoint")
            continue
        reason = checkpoint_verdict(path)
        print(f"{path}: UNDERTRAINED ({reason}); train it longer (a larger --time-budget) before relying on it"
              if reason else f"{path}: trained (not undertrained by the rule in trainer/checkpoint/quality.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
