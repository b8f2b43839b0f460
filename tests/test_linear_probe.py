"""--linear-probe (trainer/evaluation/features.py, trainer/engine/linear_probe.py): the head fitted on frozen
features, stratified rows, and a real run where the probed model is epoch 0's candidate for the best checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.helpers.cli import SMOKE, run_cli
from trainer.evaluation.features import fit_head, stratified_rows, supports_probe


def _blobs(n: int, seed: int, classes: int = 3, dim: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(0, 3, (classes, dim))
    labels = rng.integers(0, classes, n)
    return {"features": (centres[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32), "labels": labels}


def test_the_head_fitted_on_features_separates_what_a_linear_head_can():
    train, val = _blobs(300, 1), _blobs(150, 2)
    head = fit_head(train, val, 3)
    assert head["weight"].shape == (3, 16) and head["bias"].shape == (3,)
    accuracy = (head["val_logits"].argmax(1) == val["labels"]).mean()
    assert accuracy > 0.95 and head["weight_decay"] in (1e-4, 1e-3, 1e-2)
    logits = val["features"] @ head["weight"].numpy().T + head["bias"].numpy()  # what the model's Linear computes
    np.testing.assert_allclose(logits, head["val_logits"], rtol=1e-4, atol=1e-4)
    multi = {"features": train["features"], "labels": np.eye(3)[train["labels"]]}  # multi-hot rows: one BCE each
    vmulti = {"features": val["features"], "labels": np.eye(3)[val["labels"]]}
    assert ((fit_head(multi, vmulti, 3, multi_label=True)["val_logits"] > 0) == vmulti["labels"]).mean() > 0.95


def test_stratified_rows_take_up_to_n_of_each_class():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 20)
    rows = stratified_rows(labels, 10, seed=0)
    assert np.bincount(labels[rows]).tolist() == [10, 3, 10] and list(rows) == sorted(rows)
    multi = np.zeros((6, 2))
    multi[:4, 0], multi[3:, 1] = 1, 1
    assert len(stratified_rows(multi, 2, seed=0)) in (3, 4)  # a row holding both classes may count for each


def test_only_a_single_linear_head_is_probed():
    import timm

    assert supports_probe(timm.create_model("test_resnet", num_classes=3))
    conv_head = torch.nn.Module()
    conv_head.get_classifier = lambda: torch.nn.Conv2d(4, 3, 1)
    assert not supports_probe(conv_head)


@pytest.mark.slow
def test_the_probed_model_is_epoch_zero_and_fine_tuning_must_beat_it(tmp_path):
    # random-init features: the probe still beats chance by far, and an LR too small to move anything keeps it best
    flags = [a for a in SMOKE if a not in ("--max-steps", "4")]
    proc = run_cli("trainer/train.py", *flags, "--max-steps", "2", "--lr", "1e-9", "--linear-probe",
                   "--output-dir", str(tmp_path))
    history = json.loads((tmp_path / "eval" / "history.json").read_text())
    assert history[0]["epoch"] == 0 and history[0]["linear_probe"] is True and history[0]["train_rows"] == 256
    assert history[0]["val_accuracy"] > 0.3  # a fresh head scores ~0.1 (see tests/test_quality.py's 2-step run)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] >= history[0]["val_accuracy"]  # the best of the probe and the fine-tuning
    assert "linear probe: head fitted on the frozen features of 256 train samples" in proc.stdout
