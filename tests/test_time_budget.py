"""--time-budget (trainer/engine/budget.py): the step plan on known timings, the caps and the warmup it picks, a
guard that never acts before a measured plan, the mini-evaluation and the LR range test's share, and a real
0.5-minute run on a tiny model (1 minute under `make test-timing-slow`) that ends within ±15 % of its budget with the
per-phase table in manifest.json, the LR schedule stretched to its end (the LR range test inside the budget: no --lr
and no run length on a CPU choose it)."""

from __future__ import annotations

import json
import time

import pytest

from trainer.engine import budget as budget_mod
from trainer.engine.budget import Budget, Pacer, mini_evaluation, plan_steps


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
@pytest.mark.timing
def test_a_half_minute_budget_ends_on_time_with_the_schedule_stretched(budget_run):
    tmp_path, proc, minutes, wall = budget_run["out"], budget_run["proc"], budget_run["minutes"], budget_run["wall"]
    assert 0.85 * 60 * minutes <= wall <= 1.15 * 60 * minutes, (wall, proc.stdout[-2000:])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    budget = manifest["time_budget"]
    plan = budget["plan"]
    history = json.loads((tmp_path / "eval" / "history.json").read_text())
    assert history[-1]["step"] == plan["total_steps"] > 32  # the planned steps, several 32-step epochs of them
    # train_config.json is the request as asked; resolved_config.json the run as trained: the plan's steps, the LR the
    # range test chose, no deadline (re-running it repeats the run); manifest.json `chosen` pairs them
    asked = json.loads((tmp_path / "train_config.json").read_text())
    config = json.loads((tmp_path / "resolved_config.json").read_text())
    assert asked["max_steps"] is None and asked["optim"]["lr"] == 1e-3 and "time_budget" in asked["explicit"]
    assert config["max_steps"] == plan["total_steps"] and config["time_budget"] is None
    assert manifest["chosen"]["max_steps"] == {"requested": None, "value": plan["total_steps"]}
    assert manifest["config"] == config
    assert "time budget:" in proc.stdout and "ended" in proc.stdout
    # no --lr and no run length on a CPU: the trainer chose the LR with the range test, and said so
    assert "chose --lr auto" in proc.stdout and config["optim"]["lr"] != "auto"
    assert manifest["chosen"]["lr"] == {"requested": 1e-3, "value": config["optim"]["lr"]}
    assert (tmp_path / "lr_find" / "lr_find.json").is_file()
    # the per-phase table: every phase measured, the ones after the first plan planned too; no stop before a plan
    phases = budget["phases"]
    assert {"import", "data", "preflight", "decode_cache", "lr_choice", "training", "final_evaluation",
            "writing"} <= set(phases)
    assert all(phases[k]["planned_s"] > 0 for k in ("lr_choice", "training", "final_evaluation", "writing"))
    assert 0 < budget["first_plan_at_s"] < 60 * minutes and not budget["stopped_before_plan"]
    assert budget["cores"] >= 1 and manifest["hardware"]["usable_cores"] == budget["cores"]
    assert "planned s" in proc.stdout and "first plan at" in proc.stdout
    card = (tmp_path / "README.md").read_text()
    assert "| training |" in card and "first plan at" in card  # the table travels with the model card


def _pacer(deadline_s: float, **kw) -> Pacer:
    return Pacer(time.time() + deadline_s, {"val": 100, "final": 200}, images_per_step=8, **kw)


def test_the_guard_never_stops_before_a_measured_plan_and_the_warm_up_step_is_not_timed():
    pacer = _pacer(-5)  # already past the deadline: the old guard stopped here on a guess
    signals = [pacer.signal() for _ in range(3)]  # warm-up interval dropped, then one timed step
    assert Pacer.STOP not in signals and len(pacer.batch_times) == 1
    pacer.batch_times[:] = [0.5] * 3  # enough timed steps: the next signal asks for the plan, not the stop
    assert pacer.signal() == Pacer.PLAN
    pacer.eval_sample_s, pacer.write_s = 0.001, 0.5
    pacer.plan(10, 100, 0)
    assert pacer.signal() == Pacer.STOP  # with a measured plan the deadline is enforced


def test_steps_so_slow_that_three_are_a_big_share_of_the_budget_plan_after_one():
    pacer = _pacer(100)
    pacer._started = time.time()
    assert pacer.signal() == 0.0  # the first batch starts
    pacer.signal()  # the warm-up step ends
    pacer.batch_times[:] = [3.0]  # one timed step of 3 s: 3 % of a 100 s part
    assert pacer.signal() == Pacer.PLAN


def test_the_plan_is_refreshed_within_an_epoch_and_the_eval_estimate_comes_from_measurements():
    pacer = _pacer(600, batch_times=[0.05] * 40)
    pacer.eval_sample_s, pacer.write_s, pacer.save_s = 0.002, 1.0, 0.1
    plan = pacer.plan(40, 1000, 0)
    assert plan["eval_s"] == pytest.approx(200 * 0.002) and plan["val_s"] == pytest.approx(100 * 0.002 + 0.3)
    assert plan["final_s"] == pytest.approx(plan["eval_s"] + 1.0)
    assert pacer.signal() == 0.0  # just planned
    pacer._planned_at -= 61  # a tenth of a 600 s part later
    assert pacer.signal() == Pacer.PLAN
    pacer.epoch_end_s = 7.0  # once an epoch's end was timed, it replaces the estimate
    assert pacer.val_s() == 7.0


def test_the_mini_evaluation_times_batches_after_its_warm_up(monkeypatch):
    import torch

    ticks = iter([0, 9, 10, 13, 20, 21])  # batches of 9 s (its warm-up), 3 s, then 1 s: the fastest after the first
    monkeypatch.setattr(budget_mod.time, "perf_counter", lambda: next(ticks))
    data = torch.utils.data.TensorDataset(torch.zeros(16, 4), torch.zeros(16), torch.arange(16))
    per_sample, x1 = mini_evaluation(torch.nn.Linear(4, 2).train(), data, None, 4, lambda x: x, "cpu")
    assert per_sample == pytest.approx(1 / 4) and x1.shape == (1, 4)


def test_the_lr_range_test_gets_a_bounded_share_or_none():
    budget = Budget(100, start=time.time() - 10)
    with budget.phase("lr_choice"):
        assert budget.lr_find_iters(100, step_s=0.05) == 100  # a 10.8 s share: all 100 steps fit
        assert budget.lr_find_iters(100, step_s=0.2) in (53, 54)  # 54 of them, less the microseconds spent
        assert budget.lr_find_iters(100, step_s=1.0) == 0  # fewer than 30: a known-good LR instead
    assert budget.planned["lr_choice"] == pytest.approx(0.12 * 90, abs=0.5)
    assert Budget(None).lr_find_iters(100, step_s=10.0) == 100  # no budget: the full sweep


def test_the_budget_table_has_every_phase_and_the_first_plan():
    budget = Budget(60, start=time.time() - 5)
    with budget.phase("data"):
        pass
    budget.record_plan({"train_s": 40.0, "eval_s": 5.0, "write_s": 1.0}, training_so_far=2.0, first_of_part=True)
    budget.record_plan({"train_s": 99.0, "eval_s": 9.0, "write_s": 9.0}, training_so_far=9.0, first_of_part=False)
    with budget.phase("training"):
        report = budget.report()
    assert report["phases"]["import"]["measured_s"] >= 5 and report["phases"]["training"]["planned_s"] == 42.0
    assert report["phases"]["training"]["measured_s"] is not None  # the phase still running counts so far
    assert report["first_plan_at_s"] >= 5 and report["stopped_before_plan"] is False
    lines = budget.table()
    assert lines[0].startswith("time budget 1 min (60 s)") and any("training" in line for line in lines)


def test_gpu_speed_steps_are_planned_the_same_way():
    # 2 ms steps and 0.05 ms per evaluated sample (a GPU): the same arithmetic, hundreds of epochs of small data
    pacer = _pacer(600, batch_times=[0.002] * 30)
    pacer.eval_sample_s, pacer.write_s, pacer.save_s = 5e-5, 2.0, 0.05
    plan = pacer.plan(steps_done=31, steps_per_epoch=1000, epochs_done=0)
    cost = (plan["total_steps"] - 31) * 0.002 + plan["epochs"] * pacer.val_s() + pacer.final_s()
    assert 250_000 < plan["total_steps"] and cost <= plan["remaining_s"] + 1  # every step and validation fits
    assert plan["warmup_epochs"] == 1.0  # a tenth of 270+ epochs is more than the default warmup: it stays
