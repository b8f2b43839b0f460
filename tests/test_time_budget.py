"""--time-budget (trainer/engine/budget.py): the step plan on known timings, the caps and the warmup it picks, and a
real 0.5-minute run on a tiny model that ends within ±15 % of its budget, the LR schedule stretched to its end (the
LR range test inside the budget: no --lr and no run length on a CPU choose it)."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers.cli import SMOKE, run_cli
from trainer.engine.budget import Budget, Pacer, plan_steps


def test_the_plan_fills_the_time_left_with_steps_and_validations():
    # 100 s left, 10 s final evaluation: 640 steps of 0.1 s + 13 validations of 2 s (50 steps per epoch) = 90 s
    assert plan_steps(100, 0, 0.1, 50, 0, 2.0, 10.0) == 640
    # 200 steps and 4 epochs already done: only the steps and validations still to come count
    assert plan_steps(50, 200, 0.1, 50, 4, 2.0, 10.0) == 200 + 280  # 28 s of steps + 6 validations
    assert plan_steps(5, 10, 0.1, 50, 0, 2.0, 10.0) == 11  # out of time: one more step, then the deadline stops it


def test_the_pacer_caps_the_plan_and_shortens_only_a_default_warmup():
    pacer = Pacer(time.time() + 60, {"val": 100, "final": 200}, images_per_step=32, batch_times=[0.05] * 50)
    plan = pacer.plan(steps_done=50, steps_per_epoch=100, epochs_done=0)
    assert plan["step_s"] == 0.05 and plan["total_steps"] > 500
    assert plan["warmup_epochs"] == pytest.approx(min(1.0, 0.1 * plan["total_steps"] / 100))
    capped = Pacer(time.time() + 60, {"val": 100, "final": 200}, 32, cap_steps=120, warmup_epochs=0.5,
                   batch_times=[0.05] * 50).plan(50, 100, 0)
    assert capped["total_steps"] == 120 and capped["epochs"] == 2 and capped["warmup_epochs"] == 0.5


def test_folds_share_what_is_left():
    budget = Budget(300, start=time.time() - 60, parts_left=3)
    first = budget.next_deadline() - time.time()
    assert first == pytest.approx(80, abs=1) and budget.parts_left == 2


@pytest.mark.slow
def test_a_half_minute_budget_ends_on_time_with_the_schedule_stretched(tmp_path):
    flags = [a for a in SMOKE if a not in ("--max-steps", "4", "--max-train-samples", "256")]
    started = time.time()
    proc = run_cli("trainer/train.py", *flags, "--max-train-samples", "2048", "--time-budget", "0.5",
                   "--log-interval", "1000", "--output-dir", str(tmp_path))
    wall = time.time() - started
    assert 0.85 * 30 <= wall <= 1.15 * 30, (wall, proc.stdout[-2000:])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    plan = manifest["time_budget"]["plan"]
    history = json.loads((tmp_path / "eval" / "history.json").read_text())
    assert history[-1]["step"] == plan["total_steps"] > 32  # the planned steps, several 32-step epochs of them
    config = json.loads((tmp_path / "train_config.json").read_text())
    assert config["max_steps"] == plan["total_steps"] and "time_budget" in config["explicit"]
    assert "time budget:" in proc.stdout and "ended" in proc.stdout
    # no --lr and no run length on a CPU: the trainer chose the LR with the range test, and said so
    assert "chose --lr auto" in proc.stdout and config["optim"]["lr"] != "auto"
    assert (tmp_path / "lr_find" / "lr_find.json").is_file()


def test_the_plan_is_refreshed_within_an_epoch_and_probed_evaluation_replaces_the_guess():
    import torch

    pacer = Pacer(time.time() + 600, {"val": 100, "final": 200}, images_per_step=8, batch_times=[0.05] * 40)
    pacer.plan(40, 1000, 0)
    assert pacer.signal() == 0.0  # just planned
    pacer._planned_at -= 61  # a tenth of a 600 s part later
    assert pacer.signal() == Pacer.PLAN
    guess = pacer.eval_sample_s()
    pacer.probe(torch.nn.Linear(4, 2).train(), torch.zeros(8, 4))
    assert pacer.eval_sample_s() == pacer.probe_s != guess and pacer._last is None
