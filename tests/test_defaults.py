"""The trainer's own choices for a new dataset (trainer/engine/defaults.py): from the data on a CPU, never over a
flag the user set, and the packaged weights at once when the Hub is out of reach."""

from __future__ import annotations

from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from PIL import Image

from trainer.config import parse_config
from trainer.engine import defaults


def _bundle(side: int, n: int = 20) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (side, side + 4, 3), dtype=np.uint8)) for _ in range(n)]
    train = datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]},
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "label": datasets.ClassLabel(names=["a", "b"])}))
    return SimpleNamespace(train=train, input_column="image", modality="image")


@pytest.fixture
def hub_cached(monkeypatch):
    monkeypatch.setattr(defaults, "hub_weights_cached", lambda model: True)


def test_input_size_is_one_and_a_half_times_the_median_side_in_steps_of_16():
    assert [defaults.input_size_for(s, 224) for s in (8, 28, 32, 64, 100, 500)] == [32, 48, 48, 96, 160, 224]
    assert defaults.input_size_for(64, 64) == 64  # never above the model's pretrained size


def test_small_images_on_a_cpu_get_their_size_whole_frame_a_budget_and_the_lr_finder(hub_cached):
    cfg = parse_config(["--dataset", "x"])
    chosen = defaults.choose(cfg, _bundle(28), cuda=False)
    assert {k: v for k, (v, _) in chosen.items()} == {"img_size": 48, "crop_pct": 1.0, "scale": [0.8, 1.0],
                                                      "time_budget": defaults.CPU_TIME_BUDGET_MIN, "lr": "auto"}
    assert all(reason for _, reason in chosen.values())  # each choice says why


def test_a_flag_the_user_set_is_kept_and_a_run_length_means_a_chosen_recipe(hub_cached):
    cfg = parse_config(["--dataset", "x", "--img-size", "40", "--lr", "3e-4", "--time-budget", "2"])
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
