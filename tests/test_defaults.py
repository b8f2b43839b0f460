"""The trainer's own choices for a new dataset (trainer/engine/defaults.py): from the data on a CPU, never over a
flag the user set, and the packaged weights at once when the Hub is out of reach."""

from __future__ import annotations

from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from PIL import Image

from trainer.engine import defaults
from trainer.flags import parse_config


def _bundle(side: int, n: int = 20) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (side, side + 4, 3), dtype=np.uint8)) for _ in range(n)]
    train = datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]},
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "label": datasets.ClassLabel(names=["a", "b"])}))
    return SimpleNamespace(train=train, val=train, test=None, label_names=["a", "b"], input_column="image",
                           modality="image")


def _fast(monkeypatch, train_s: float = 1e-4, eval_s: float = 3e-5) -> list:
    """A measured speed of our choosing (seconds per image at the size asked); returns the sizes asked."""
    asked = []

    def speed(cfg, num_classes, size):
        asked.append(size)
        return {"train_s": train_s, "eval_s": eval_s}

    monkeypatch.setattr(defaults, "model_speed", speed)
    return asked


def _values(chosen: dict) -> dict:
    return {k: value[0] for k, value in chosen.items() if k != defaults.HINTS}


@pytest.fixture
def hub_cached(monkeypatch):
    monkeypatch.setattr(defaults, "hub_weights_cached", lambda model: True)


def test_input_size_is_one_and_a_half_times_the_median_side_in_steps_of_16():
    assert [defaults.input_size_for(s, 224) for s in (8, 28, 32, 64, 100, 500)] == [32, 48, 48, 96, 160, 224]
    assert defaults.input_size_for(64, 64) == 64  # never above the model's pretrained size


def test_small_images_on_a_cpu_get_their_size_whole_frame_a_budget_probe_and_the_lr_finder(hub_cached, monkeypatch):
    _fast(monkeypatch)
    cfg = parse_config(["--dataset", "x"])
    chosen = defaults.choose(cfg, _bundle(28), cuda=False)
    assert _values(chosen) == {"img_size": 48, "crop_pct": 1.0, "scale": [0.8, 1.0], "linear_probe": True,
                               "time_budget": defaults.CPU_TIME_BUDGET_MIN, "lr": "auto"}
    assert all(value[1] for k, value in chosen.items() if k != defaults.HINTS)  # each choice says why
    assert chosen[defaults.HINTS]["train_step_s"] == pytest.approx(1e-4 * 64)  # what it measured, for the budget


def test_large_photos_get_the_largest_size_at_which_the_budget_buys_an_epoch(hub_cached, monkeypatch):
    photos = SimpleNamespace(train=range(2000), val=range(2000), test=None, label_names=["a", "b"])  # sizes only
    asked = _fast(monkeypatch, train_s=0.01, eval_s=0.003)  # 224 px: 20 s an epoch of 2,000
    size, reason, _ = defaults.size_for_budget(parse_config(["--dataset", "x"]), photos, 224, 5, elapsed_s=20)
    assert size == 224 and asked == [224] and "224 px" in reason
    _fast(monkeypatch, train_s=0.2, eval_s=0.06)  # 20x slower: 224 px buys < 1 epoch of 400 s in 5 minutes
    size, reason, train_s = defaults.size_for_budget(parse_config(["--dataset", "x"]), photos, 224, 5, elapsed_s=20)
    # 280 s left x (1 - the LR share) = 246 s; at 128 px the probe + evaluation take 90 s and an epoch 170 s (0.92
    # epochs), at 96 px 51 s and 96 s (2.0 epochs): 96 is the largest size that buys one
    assert size == 96 and train_s == pytest.approx(0.2 * (96 / 224) ** 2) and "buy 2.0" in reason
    _fast(monkeypatch, train_s=50.0, eval_s=10.0)  # hopelessly slow: never below the photo floor of 96 px
    size, reason, _ = defaults.size_for_budget(parse_config(["--dataset", "x"]), photos, 224, 5, 20)
    assert size == 96 and "none buys 1" in reason


def test_a_flag_the_user_set_is_kept_and_a_run_length_means_a_chosen_recipe(hub_cached, monkeypatch):
    _fast(monkeypatch)
    cfg = parse_config(["--dataset", "x", "--img-size", "40", "--lr", "3e-4", "--time-budget", "2",
                        "--no-linear-probe"])
    chosen = defaults.choose(cfg, _bundle(28), cuda=False)
    assert set(chosen) == {"crop_pct", "scale"}
    assert defaults.choose(parse_config(["--dataset", "x", "--max-steps", "10"]), _bundle(28), cuda=False) == {}
    assert defaults.choose(parse_config(["--dataset", "x"]), _bundle(28), cuda=True) == {}  # a GPU: timm's own
    big = defaults.choose(parse_config(["--dataset", "x"]), _bundle(300), cuda=False)
    assert big["img_size"][0] == 224 and "crop_pct" not in big  # large photos keep the model's crop


def test_the_packaged_weights_are_used_at_once_when_the_hub_is_out_of_reach(monkeypatch, tmp_path):
    monkeypatch.setattr(defaults, "hub_weights_cached", lambda model: False)
    monkeypatch.setattr(defaults, "hub_reachable", lambda timeout=2.0: False)
    monkeypatch.setenv("TIMM_SPACE_CACHE", str(tmp_path))
    chosen = defaults.choose(parse_config(["--dataset", "x", "--max-steps", "1"]), _bundle(28), cuda=False)
    path, reason = chosen["pretrained_file"]
    assert path.startswith(str(tmp_path)) and path.endswith(".safetensors") and "unreachable" in reason
    other = parse_config(["--dataset", "x", "--max-steps", "1", "--model", "resnet18"])
    assert defaults.choose(other, _bundle(28), cuda=False) == {}  # only the default model has packaged weights


def test_offline_means_unreachable_without_a_connection_attempt(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(defaults.socket, "create_connection", lambda *a, **k: pytest.fail("no connection"))
    assert defaults.hub_reachable() is False


def test_a_model_whose_speed_cannot_be_measured_keeps_the_median_rule(hub_cached, monkeypatch):
    def offline(cfg, num_classes, size):
        raise OSError("no network for hf-hub:org/model")

    monkeypatch.setattr(defaults, "model_speed", offline)
    chosen = defaults.choose(parse_config(["--dataset", "x"]), _bundle(300), cuda=False)
    assert chosen["img_size"][0] == 224 and "could not be measured here: OSError" in chosen["img_size"][1]
    assert defaults.HINTS not in chosen
