"""Each training flag the docs promise, checked for its effect (not only that a run with it finishes)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.helpers.cli import SMOKE, run_cli
from trainer.config import AugmentConfig, TrainConfig
from trainer.errors import UserError
from trainer.flags import parse_config


def _tiny_model():
    import timm

    torch.manual_seed(0)
    return timm.create_model("test_resnet", num_classes=3, pretrained=False)


def _step(model, optimizer, scheduler, step: int) -> None:
    """One optimizer step on a fixed batch (the scheduler applies each group's lr_scale at step_update)."""
    scheduler.step_update(step)
    torch.manual_seed(step)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_freeze_epochs_keeps_the_backbone_bit_identical_then_trains_it():
    from trainer.engine.optim import build_optim, set_phase

    model = _tiny_model()
    cfg = parse_config(["--freeze-epochs", "1", "--backbone-lr-scale", "0.1", "--lr", "1e-2", "--warmup-epochs", "0"])
    optimizer, scheduler, _ = build_optim(model, cfg, steps_per_epoch=2)
    head = {id(p) for p in model.get_classifier().parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    set_phase(optimizer, cfg, epoch=0)
    _step(model, optimizer, scheduler, 1)
    for name, p in model.named_parameters():
        same = torch.equal(p, before[name])
        assert same != (id(p) in head), name  # backbone untouched (bit for bit), head moved
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    set_phase(optimizer, cfg, epoch=1)
    _step(model, optimizer, scheduler, 2)
    moved = [n for n, p in model.named_parameters() if id(p) not in head and not torch.equal(p, frozen[n])]
    assert len(moved) > 5
    scales = {g["part"]: g["lr_scale"] for g in optimizer.param_groups}
    assert scales == {"head": 1.0, "backbone": 0.1}


def test_balance_loss_weights_are_inverse_class_frequency():
    from trainer.engine.optim import build_loss

    cfg = parse_config(["--balance", "loss"])
    loaders = SimpleNamespace(class_counts=np.array([90, 10, 0]), multi_label=False)
    criterion, mixup = build_loss(cfg, loaders, num_classes=3)
    assert mixup is None
    np.testing.assert_allclose(criterion.weight.numpy(), [100 / (3 * 90), 100 / (3 * 10), 100 / 3], rtol=1e-6)
    loaders = SimpleNamespace(class_counts=np.array([90, 10]), multi_label=False)
    assert build_loss(parse_config([]), loaders, 2)[0].weight is None


def test_balance_sampler_draws_classes_near_uniformly():
    from trainer.data.loaders import EpochWeightedSampler

    labels = np.array([0] * 950 + [1] * 50)
    counts = np.bincount(labels)
    sampler = EpochWeightedSampler(1.0 / counts[labels], seed=0)
    drawn = labels[list(iter(sampler))]
    assert abs(drawn.mean() - 0.5) < 0.05  # 5 % of the data, half of the draws
    sampler.set_epoch(1)
    assert list(iter(sampler)) != list(iter(EpochWeightedSampler(1.0 / counts[labels], seed=0)))  # new epoch


def test_patience_stops_at_the_expected_epoch(tmp_path, monkeypatch):
    from trainer.engine import loop

    monkeypatch.setattr(loop, "train_one_epoch", lambda ctx, epoch: 0.0)
    monkeypatch.setattr(loop, "save_best", lambda *a: None)
    monkeypatch.setattr(loop, "save_epoch_state", lambda acc, out, epoch: out / f"epoch_{epoch}")
    accelerator = SimpleNamespace(log=lambda *a, **k: None, print=lambda *a, **k: None)
    values = iter([0.5, 0.6, 0.6, 0.55, 0.9, 0.9])
    cfg = parse_config(["--patience", "2", "--epochs", "6"])
    ctx = loop.LoopContext(cfg, accelerator, torch.nn.Linear(1, 1), None, None, None, None, None, None,
                           loop.TrainState(), 6, tmp_path)
    state = loop.fit(ctx, lambda model: {"accuracy": next(values)})
    assert len(state.history) == 4 and state.best == 0.6 and state.best_epoch == 1  # 0.6, 0.55: two bad epochs


def test_aa_and_color_jitter_change_the_pil_batches_and_cannot_be_dropped_by_the_cache():
    from PIL import Image

    from trainer.data.images import train_transform, use_decode_cache

    data_cfg = {"input_size": (3, 32, 32), "interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.5,) * 3}
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(8)]

    def batch(aug: AugmentConfig) -> torch.Tensor:
        torch.manual_seed(0)
        __import__("random").seed(0)
        t = train_transform(data_cfg, aug)
        return torch.stack([torch.as_tensor(np.asarray(t(im))) for im in images])

    plain = AugmentConfig(scale=[1.0, 1.0], hflip=0.0)
    assert torch.equal(batch(plain), batch(plain))  # the comparison is deterministic
    assert not torch.equal(batch(plain), batch(AugmentConfig(scale=[1.0, 1.0], hflip=0.0, aa="rand-m9-mstd0.5")))
    assert not torch.equal(batch(plain), batch(AugmentConfig(scale=[1.0, 1.0], hflip=0.0, color_jitter=0.4)))
    assert use_decode_cache("auto", 1e6, AugmentConfig(aa="rand-m9-mstd0.5")) is False
    with pytest.raises(UserError, match="would be dropped"):
        use_decode_cache("on", 1e6, AugmentConfig(aa="rand-m9-mstd0.5"))
    assert use_decode_cache("on", 1e6, AugmentConfig()) is True


def test_reprob_and_cutmix_change_the_batches():
    from trainer.data.images import DevicePreprocess
    from trainer.engine.optim import build_loss

    data_cfg = {"mean": (0.5,) * 3, "std": (0.5,) * 3}
    x = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(0)
    plain = DevicePreprocess(data_cfg, AugmentConfig(), False, False)(x)
    torch.manual_seed(0)
    erased = DevicePreprocess(data_cfg, AugmentConfig(reprob=1.0), False, False)(x)
    changed = (erased != plain).flatten(1).any(1)
    assert changed.all()  # every image got an erased box at probability 1
    cfg = parse_config(["--cutmix", "1.0", "--smoothing", "0"])
    _, mixup = build_loss(cfg, SimpleNamespace(class_counts=np.array([4, 4]), multi_label=False), num_classes=2)
    torch.manual_seed(0)
    mixed, target = mixup(plain.clone(), torch.tensor([0, 1] * 4))
    assert not torch.equal(mixed, plain) and target.shape == (8, 2) and ((target > 0) & (target < 1)).any()


def _first_update(tmp_path, name: str, *flags: str) -> dict:
    """The weights after one SGD step of test_vit with every random augmentation and dropout off."""
    from safetensors.torch import load_file

    out = tmp_path / name
    run_cli("trainer/train.py", "--dataset", "fashion-mnist", "--model", "test_vit", "--no-pretrained",
            "--img-size", "32", "--max-train-samples", "256", "--max-eval-samples", "32", "--max-steps", "1",
            "--scale", "1.0", "1.0", "--ratio", "1", "1", "--hflip", "0", "--smoothing", "0", "--drop-rate", "0",
            "--lr", "0.1",
            "--opt", "sgd",  # SGD: the update is lr × gradient (Adam's first step would magnify rounding)
            "--warmup-epochs", "0", "--decode-cache", "on", "--num-workers", "0", "--output-dir", str(out), *flags)
    return load_file(str(next((out / "state").glob("epoch_*")) / "model.safetensors"))


@pytest.mark.slow
def test_grad_accum_2_x_32_makes_the_same_first_update_as_batch_64(tmp_path):
    one = _first_update(tmp_path, "b64", "--batch-size", "64")
    two = _first_update(tmp_path, "b32x2", "--batch-size", "32", "--grad-accum", "2")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_model_ema_ships_the_ema_weights_not_the_trained_ones(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "ema"
    run_cli("trainer/train.py", *SMOKE, "--model-ema", "--model-ema-decay", "0.5", "--output-dir", str(out))
    shipped = load_file(str(out / "model.safetensors"))
    trained = load_file(str(next((out / "state").glob("epoch_*")) / "model.safetensors"))
    ema = torch.load(next((out / "state").glob("epoch_*")) / "custom_checkpoint_1.pkl", weights_only=False)
    ema = ema.get("state_dict", ema) if isinstance(ema, dict) else ema
    ema = {k.removeprefix("module."): v for k, v in ema.items()}
    float_keys = [k for k in shipped if shipped[k].is_floating_point() and "running" not in k]
    assert any(not torch.equal(shipped[k], trained[k]) for k in float_keys)  # not the trained weights
    for k in float_keys:
        torch.testing.assert_close(shipped[k], ema[k], msg=k)  # the EMA ones
    assert json.loads((out / "train_config.json").read_text())["model_ema"] is True


def test_train_config_round_trips_every_flag_default():
    cfg = TrainConfig()
    assert parse_config([]).to_dict() == cfg.to_dict()
