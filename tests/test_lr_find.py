"""The LR range test (trainer/engine/lr_find.py): the suggestion rules on known curves, and on the smoke recipe a
short run at the suggested LR beats the same run at 100× below and 100× above it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.helpers.cli import SMOKE, run_cli
from trainer.engine.lr_find import lr_at, suggest, valley


def test_the_sweep_is_exponential_from_start_to_end():
    lrs = [lr_at(i, 50) for i in range(50)]
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    assert np.allclose(np.diff(np.log(lrs)), np.log(1e8) / 49)


def test_the_suggestion_is_a_tenth_of_the_minimum_inside_the_descent():
    lrs = [lr_at(i, 100) for i in range(100)]
    x = np.log10(lrs)
    # flat, a descent from 1e-4 to 1e-1, then a blow-up: the classic range-test curve
    losses = 2.3 - 1.5 / (1 + np.exp(-3 * (x + 2.5))) + np.where(x > -1, 4 * (x + 1) ** 2, 0)
    found = suggest(lrs, list(losses))
    lo = lrs[int(np.argmin(losses))]
    assert found["suggestion"] == pytest.approx(lo / 10) and 1e-3 < found["suggestion"] < lo
    assert 1e-4 < found["steepest"] < lo  # the steepest point is inside the descent too
    assert found["valley"] == valley(lrs, list(losses)) < found["suggestion"]  # valley: far lower (why it lost)


def test_too_short_a_curve_is_refused():
    with pytest.raises(ValueError, match="too few"):
        suggest([1e-5, 1e-4, 1e-3], [1.0, 0.9, 5.0])


def _final_loss(out) -> float:
    """Training loss of the last epoch of a run (eval/history.json)."""
    return json.loads((out / "eval" / "history.json").read_text())[-1]["train_loss"]


@pytest.mark.slow
def test_the_suggested_lr_beats_100x_below_and_above(tmp_path):
    base = [a for a in SMOKE if a not in ("--tta", "flip")]
    proc = run_cli("trainer/train.py", *base, "--lr-find", "--lr-find-iters", "60", "--output-dir",
                   str(tmp_path / "find"))
    found = json.loads((tmp_path / "find" / "lr_find" / "lr_find.json").read_text())
    assert (tmp_path / "find" / "lr_find" / "lr_find.png").stat().st_size > 5000
    assert f"suggested lr {found['suggestion']:.2e}" in proc.stdout
    assert not (tmp_path / "find" / "model.safetensors").exists()  # --lr-find exits before training
    lr = found["suggestion"]
    short = [a for a in base if a not in ("--max-steps", "4")] + ["--max-steps", "24", "--epochs", "6",
                                                                  "--warmup-epochs", "0", "--max-eval-samples", "32"]
    losses = {}
    # --lr auto: the same range test, then training at its suggestion, recorded in resolved_config.json (the request,
    # train_config.json, keeps "auto": re-running it tests again)
    run_cli("trainer/train.py", *short, "--lr", "auto", "--lr-find-iters", "60", "--output-dir",
            str(tmp_path / "suggested"))
    assert json.loads((tmp_path / "suggested" / "resolved_config.json").read_text())["optim"]["lr"] == lr
    assert json.loads((tmp_path / "suggested" / "train_config.json").read_text())["optim"]["lr"] == "auto"
    losses["suggested"] = _final_loss(tmp_path / "suggested")
    for name, value in (("below", lr / 100), ("above", lr * 100)):
        run_cli("trainer/train.py", *short, "--lr", repr(value), "--output-dir", str(tmp_path / name))
        losses[name] = _final_loss(tmp_path / name)
    assert all(math.isfinite(v) for v in (losses["suggested"], losses["below"])), losses
    assert losses["suggested"] < losses["below"] and losses["suggested"] < losses["above"], (lr, losses)
