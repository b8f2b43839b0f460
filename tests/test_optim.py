"""Parameter groups by timm's rules (weight decay, --layer-decay) and their LR scales through the fine-tune phases."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers.cli import run_cli
from trainer.errors import UserError
from trainer.flags import parse_config


def _model(name: str, **kw):
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, num_classes=3, pretrained=False, **kw)


def _by_name(model, groups: list[dict], key: str) -> dict[str, float]:
    """Parameter name -> the `key` of the one group holding it (every trainable tensor in exactly one group)."""
    names = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, float] = {}
    for g in groups:
        for p in g["params"]:
            assert names[id(p)] not in out, names[id(p)]
            out[names[id(p)]] = g[key]
    assert set(out) == set(names.values())
    return out


@pytest.mark.parametrize("name, kw", [("test_vit", {}), ("test_convnext", {}),
                                      ("swin_tiny_patch4_window7_224", dict(img_size=32, window_size=4, embed_dim=16,
                                                                            depths=(1, 1), num_heads=(1, 1)))])
@pytest.mark.parametrize("layer_decay", [None, 0.75])
def test_norms_biases_and_no_weight_decay_tensors_are_not_decayed(name, kw, layer_decay):
    from trainer.engine.optim import param_groups

    model = _model(name, **kw)
    wd = _by_name(model, param_groups(model, 0.05, layer_decay), "weight_decay")
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    params = dict(model.named_parameters())
    for n, p in params.items():
        expected = 0.0 if p.ndim <= 1 or n.endswith(".bias") or n in skip else 0.05
        assert wd[n] == expected, n
    nwd = {"test_vit": {"cls_token", "pos_embed"}, "test_convnext": set(),
           "swin_tiny_patch4_window7_224": {"layers.0.blocks.0.attn.relative_position_bias_table"}}[name]
    assert nwd <= {n for n in params if wd[n] == 0.0}  # >1-D tensors kept from decay by no_weight_decay() alone
    assert all(params[n].ndim > 1 for n in nwd)
    assert any(wd[n] == 0.05 for n in params)


def test_layer_decay_scales_the_lr_by_depth_head_at_one():
    from trainer.engine.optim import param_groups

    vit = _model("test_vit")
    scale = _by_name(vit, param_groups(vit, 0.05, 0.75), "layer_scale")
    depth = len(vit.blocks)  # stem (patch_embed, cls_token, pos_embed), the blocks, then the head's layer at 1
    assert scale["head.weight"] == scale["head.bias"] == 1.0
    for k in range(depth):
        assert scale[f"blocks.{k}.attn.qkv.weight"] == pytest.approx(0.75 ** (depth - k))
    assert scale["pos_embed"] == scale["cls_token"] == scale["patch_embed.proj.weight"] == pytest.approx(
        0.75 ** (depth + 1))
    convnext = _model("test_convnext")
    scale = _by_name(convnext, param_groups(convnext, 0.05, 0.75), "layer_scale")
    ordered = [scale[n] for n, _ in convnext.named_parameters()]
    assert ordered == sorted(ordered) and ordered[0] < 0.1 and ordered[-1] == 1.0  # deeper = larger
    assert scale["head.fc.weight"] == 1.0
    assert set(_by_name(convnext, param_groups(convnext, 0.05), "lr_scale").values()) == {1.0}  # off: all at lr


def test_phase_factor_multiplies_each_layer_scale_and_survives_the_unfreeze():
    """group LR = scheduled LR x layer scale x phase factor (0 frozen, --backbone-lr-scale after), every epoch."""
    from trainer.engine.optim import build_optim, set_phase

    model = _model("test_vit")
    cfg = parse_config(["--layer-decay", "0.75", "--freeze-epochs", "1", "--backbone-lr-scale", "0.5",
                        "--lr", "1e-2", "--warmup-epochs", "0"])
    optimizer, scheduler, _ = build_optim(model, cfg, steps_per_epoch=2)
    layer = _by_name(model, optimizer.param_groups, "layer_scale")
    assert len(set(layer.values())) == len(model.blocks) + 2
    for epoch, step, factor in ((0, 1, 0.0), (1, 2, 0.5), (2, 4, 0.5)):  # epoch 2: no compounding of the factor
        set_phase(optimizer, cfg, epoch)
        scheduler.step_update(step)
        value = scheduler._get_values(step, on_epoch=False)[0]  # the schedule's LR at this step, before scaling
        assert value > 0
        for g in optimizer.param_groups:
            expected = g["layer_scale"] * (1.0 if g["part"] == "head" else factor)
            assert g["lr_scale"] == pytest.approx(expected)
            assert g["lr"] == pytest.approx(value * expected)
    head = [g for g in optimizer.param_groups if g["part"] == "head"]
    assert head and all(g["lr"] == pytest.approx(value) for g in head)


@pytest.mark.parametrize("value, ok", [("0", False), ("-0.5", False), ("1.5", False), ("1", True), ("0.65", True)])
def test_layer_decay_range_is_checked(value, ok):
    if ok:
        assert parse_config(["--layer-decay", value]).optim.layer_decay == float(value)
    else:
        with pytest.raises(UserError, match="--layer-decay must be within"):
            parse_config(["--layer-decay", value])


RUN = ["--dataset", "fashion-mnist", "--epochs", "2", "--freeze-epochs", "1", "--backbone-lr-scale", "0.5",
       "--layer-decay", "0.75", "--max-train-samples", "64", "--max-eval-samples", "32", "--img-size", "32",
       "--warmup-epochs", "0"]


@pytest.mark.slow
def test_a_run_keeps_the_layer_scales_through_the_unfreeze(tmp_path):
    """Two test_vit epochs from random init (frozen, then fine-tune; ~17 s of CPU): the saved optimizer's groups
    hold layer scale x 0.5 in the backbone and the head's 1, and the card states apache-2.0 with no base model.
    (A lite0 --pretrained-file run costs twice that: its card is tested in tests/test_card_licence.py.)"""
    from huggingface_hub import ModelCard

    out = tmp_path / "run"
    proc = run_cli("trainer/train.py", *RUN, "--model", "test_vit", "--no-pretrained", "--output-dir", str(out))
    printed = proc.stdout + proc.stderr
    assert "non-commercial" not in printed and "licence of the initial weights is unknown" not in printed
    groups = torch.load(out / "state" / "epoch_1" / "optimizer.bin", weights_only=True)["param_groups"]
    depths = sorted({g["layer_scale"] for g in groups})
    assert depths == pytest.approx([0.75 ** k for k in range(7, -1, -1)])  # stem, 6 blocks, head
    for g in groups:
        assert g["lr_scale"] == pytest.approx(g["layer_scale"] * (1.0 if g["part"] == "head" else 0.5))
    head_lr = next(g["lr"] for g in groups if g["part"] == "head")
    assert all(g["lr"] == pytest.approx(head_lr * g["lr_scale"]) for g in groups)  # the schedule's LR x scale
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "apache-2.0" and card.data.base_model is None
    assert "hf_hub_id" not in json.loads((out / "config.json").read_text())["pretrained_cfg"]  # random init: no base
