"""Grad-CAM (trainer/evaluation/explain.py and the app's /explain_image): the map points at the object the real
ImageNet model recognised, changes when the weights are randomised, works for CNN and ViT checkpoints through
gradio_client, and names what is unsupported."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from tests.helpers.app import launch, photo
from trainer import weights
from trainer.errors import UserError
from trainer.evaluation.explain import gradcam, mass_inside, overlay, shown_input, target_layer

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
BOX = (16, 16, 128, 128)  # (top, left, bottom, right) of the planted object on a 224² grey canvas: 25 % of it


@pytest.fixture(scope="module")
def lite0(tmp_path_factory) -> torch.nn.Module:
    """The packaged real ImageNet EfficientNet-Lite0 (1000 classes), in eval mode."""
    path = weights.convert_lite0(tmp_path_factory.mktemp("weights") / "lite0.safetensors")
    return timm.create_model("tf_efficientnet_lite0", pretrained=True, num_classes=1000,
                             pretrained_cfg_overlay=dict(file=str(path))).eval()


def _planted() -> Image.Image:
    """sklearn's flower photo shrunk into the top-left quarter of a plain grey 224² canvas."""
    from sklearn.datasets import load_sample_images

    flower = Image.fromarray(load_sample_images().images[1]).resize((BOX[3] - BOX[1], BOX[2] - BOX[0]))
    canvas = Image.new("RGB", (224, 224), (128, 128, 128))
    canvas.paste(flower, (BOX[1], BOX[0]))
    return canvas


def _input(model: torch.nn.Module, image: Image.Image) -> torch.Tensor:
    """timm's eval transform at crop_pct 1 (the canvas is not cropped, so BOX stays where it was planted)."""
    cfg = {**timm.data.resolve_data_config({}, model=model), "crop_pct": 1.0}
    return timm.data.create_transform(**cfg)(image)[None]


def test_the_map_falls_on_the_planted_object_and_not_for_random_weights(lite0):
    x = _input(lite0, _planted())
    cam, cls, logits = gradcam(lite0, x)
    # a confident real prediction (random weights give ~0.001), and the map explains it
    assert cls == int(np.argmax(logits)) and torch.softmax(torch.from_numpy(logits), 0)[cls] > 0.05
    inside = mass_inside(cam, BOX)
    assert inside > 0.5, inside  # mostly on the object, which covers a quarter of the image
    torch.manual_seed(0)
    random = timm.create_model("tf_efficientnet_lite0", num_classes=1000).eval()
    cam_random, _, _ = gradcam(random, x, cls)
    # the sanity check of Adebayo et al. (2018): a map that survives randomised weights explains nothing
    assert mass_inside(cam_random, BOX) < inside / 2
    assert np.corrcoef(cam.ravel(), cam_random.ravel())[0, 1] < 0.5
    picture = overlay(shown_input(x, (0.5,) * 3, (0.5,) * 3), cam)
    assert picture.size == (224, 224) and len(picture.getcolors(1 << 20) or range(10_000)) > 1000


def test_another_class_gives_another_map(lite0):
    x = _input(lite0, _planted())
    top, _, _ = gradcam(lite0, x)
    other, cls, _ = gradcam(lite0, x, 7)
    assert cls == 7 and not np.allclose(top, other, atol=0.05)


def test_vit_tokens_map_onto_the_patch_grid_at_a_trained_size():
    torch.manual_seed(0)
    vit = timm.create_model("test_vit", num_classes=3, img_size=64).eval()
    assert target_layer(vit, (3, 64, 64)).name == f"blocks.{len(vit.blocks) - 1}.norm1"
    cam, _, _ = gradcam(vit, torch.randn(1, 3, 64, 64))
    assert cam.shape == (64, 64) and cam.max() == pytest.approx(1.0)


def test_an_unsupported_architecture_gets_a_clear_message():
    mixer = timm.create_model("mixer_s16_224", num_classes=2, img_size=64).eval()  # tokens, no patch grid
    with pytest.raises(UserError, match="not a feature map; this architecture is not supported"):
        gradcam(mixer, torch.randn(1, 3, 64, 64))


def _checkpoint(model: torch.nn.Module, out: Path, labels: list[str]) -> Path:
    """A served checkpoint (config.json + model.safetensors) written by the trainer's own writer."""
    from trainer.checkpoint.write import save_model_files

    save_model_files(model, out, timm.data.resolve_data_config({}, model=model), labels)
    return out


def _explain(checkpoint: Path, image: Path, target: str) -> tuple[Image.Image, str]:
    """(overlay, note) from /explain_image of an app serving `checkpoint`, through gradio_client."""
    from gradio_client import handle_file

    from space.settings import ModelChoice, Settings

    demo, client = launch(Settings(image=ModelChoice(str(checkpoint), "test")))
    try:
        path, note = client.predict(handle_file(str(image)), target, api_name="/explain_image")
        return Image.open(path).convert("RGB"), note
    finally:
        demo.close()


@pytest.mark.slow
def test_explain_image_api_for_lite0_and_a_vit_checkpoint(lite0, tmp_path):
    from gradio_client.exceptions import AppError

    _planted().save(tmp_path / "flower.png")
    labels = [f"class_{i}" for i in range(1000)]
    picture, note = _explain(_checkpoint(lite0, tmp_path / "lite0", labels), tmp_path / "flower.png",
                             "(top prediction)")
    assert picture.size == (224, 224) and "Grad-CAM for **class\\_" in note and "`blocks." in note
    torch.manual_seed(0)
    vit = timm.create_model("test_vit", num_classes=3).eval()
    photo(64, 64).save(tmp_path / "photo.png")
    picture, note = _explain(_checkpoint(vit, tmp_path / "vit", ["a", "b", "c"]), tmp_path / "photo.png", "b")
    assert min(picture.size) >= 160 and "Grad-CAM for **b**" in note and "norm1" in note
    with pytest.raises(AppError, match="is not a label of the served model"):
        _explain(tmp_path / "vit", tmp_path / "photo.png", "zebra")
