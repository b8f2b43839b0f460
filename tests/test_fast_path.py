"""The CUDA fast-path decisions, checked on CPU by pretending CUDA is there (tests/test_gpu.py runs them for real)."""

from __future__ import annotations

import pytest
import torch

from trainer.engine.loop import Throughput
from trainer.engine.optim import build_optim
from trainer.engine.run import resolve_precision
from trainer.flags import parse_config


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)


def test_bf16_is_the_default_only_where_cuda_has_it(fake_cuda, monkeypatch):
    assert resolve_precision(None) == "bf16"
    assert resolve_precision("no") == "no" and resolve_precision("fp16") == "fp16"  # the flag wins
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # `accelerate config`/launch's choice wins too
    assert resolve_precision(None) is None
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # what `accelerate launch` exports when nothing was chosen
    assert resolve_precision(None) == "bf16"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert resolve_precision(None) is None  # e.g. a T4: Accelerate's default (fp32), not emulated bf16


def test_adam_family_is_fused_on_cuda_and_others_untouched(fake_cuda):
    import timm

    model = timm.create_model("test_resnet", num_classes=3)  # torch's fused AdamW also runs on CPU tensors
    adamw, _, _ = build_optim(model, parse_config(["--opt", "adamw"]), steps_per_epoch=10)
    assert adamw.defaults["fused"] is True
    sgd, _, _ = build_optim(model, parse_config(["--opt", "sgd"]), steps_per_epoch=10)
    assert "fused" not in sgd.defaults or not sgd.defaults["fused"]


def test_cpu_keeps_the_unfused_optimizer(monkeypatch):
    import timm

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine

    model = timm.create_model("test_resnet", num_classes=3)
    adamw, _, _ = build_optim(model, parse_config(["--opt", "adamw"]), steps_per_epoch=10)
    assert not adamw.defaults.get("fused")


def test_throughput_skips_the_first_step_and_counts_all_processes(monkeypatch):
    clock = iter([10.0, 11.0, 12.0, 14.0])
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    meter = Throughput(images_per_step=64 * 2)
    meter.step()  # t=10: the warm-up step starts the clock
    meter.step()  # t=11
    assert meter.interval_rate() == 128.0
    meter.step()  # t=12
    meter.step()  # t=14
    assert meter.interval_rate() == pytest.approx(128 * 2 / 3)
    assert meter.epoch_rate() == pytest.approx(128 * 3 / 4)
