"""Undertrained models say so wherever they are served (trainer/checkpoint/quality.py): the rule itself, and a real
2-step run marked in the app's status line (through gradio_client), in its model card and by `make demo`'s check,
while the suite's normally trained checkpoint (the time-budget run) is not."""

from __future__ import annotations

import os

import pytest

from tests.helpers.cli import SMOKE, run_cli
from trainer.checkpoint.quality import MARGIN, undertrained

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
PER_CLASS = {c: {"support": n} for c, n in (("a", 60), ("b", 30), ("c", 10))}  # majority rate 0.6


def test_the_rule_compares_with_a_constant_answer_and_a_stop_before_any_plan():
    metrics = {"primary_split": "test", "test": {"accuracy": 0.6 + MARGIN - 0.01}}
    assert "majority-class rate 0.600" in undertrained(metrics, PER_CLASS, {})
    assert undertrained({"primary_split": "test", "test": {"accuracy": 0.7}}, PER_CLASS, {}) is None
    stopped = {"time_budget": {"stopped_before_plan": True}}
    assert "before any plan" in undertrained({"primary_split": "test", "test": {"accuracy": 0.99}}, PER_CLASS, stopped)
    # multi-label: the mean prevalence is what a random ranking's AP comes to (here (60 + 30 + 10) / 3 / 100)
    multi = {"primary_split": "val", "val": {"map": 0.36, "num_samples": 100}}
    assert "mean class prevalence 0.333" in undertrained(multi, PER_CLASS, {})
    assert undertrained({"primary_split": "val", "val": {"map": 0.5, "num_samples": 100}}, PER_CLASS, {}) is None
    assert undertrained({}, {}, {}) is None and undertrained({"test": []}, [], []) is None  # nothing to judge by


def _status(checkpoint) -> str:
    """The Image tab's status line for a checkpoint, through gradio_client."""
    from space.settings import ModelChoice, Settings
    from tests.helpers.app import launch

    demo, client = launch(Settings(image=ModelChoice(str(checkpoint), "test fixture")))
    try:
        return client.predict(api_name="/image_model")[0]
    finally:
        demo.close()


@pytest.mark.slow
def test_a_two_step_model_is_marked_undertrained_and_a_trained_one_is_not(budget_run, tmp_path):
    two = tmp_path / "two"
    flags = [a for a in SMOKE if a not in ("--max-steps", "4")]
    run_cli("trainer/train.py", *flags, "--max-steps", "2", "--output-dir", str(two))
    trained = budget_run["out"]
    status = _status(two)
    assert "Undertrained" in status and "majority-class rate" in status
    assert "Undertrained" not in _status(trained)
    assert "⚠️ **Undertrained**" in (two / "README.md").read_text()
    assert "Undertrained" not in (trained / "README.md").read_text()
    said = run_cli("-m", "trainer.checkpoint.quality", str(two), str(trained)).stdout.splitlines()
    assert said[0].startswith(f"{two}: UNDERTRAINED (test accuracy") and said[1] == f"{trained}: trained (not " \
        "undertrained by the rule in trainer/checkpoint/quality.py)"
