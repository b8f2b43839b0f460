"""The CUDA fast path: bf16 by default, fused AdamW, uint8 batches normalised on the GPU, --torch-compile training.

Marked `gpu` and skipped without CUDA; run them explicitly on a GPU machine: `pytest -m gpu tests/test_gpu.py`.
They need torch + timm + accelerate only (no datasets, evaluate or gradio), so they run on a bare GPU image.
"""

from __future__ import annotations

import pytest
import torch

from trainer.engine.run import make_accelerator
from trainer.flags import parse_config

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps one process-wide state; each test builds its own Accelerator from scratch."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_accelerator_defaults_to_bf16_and_cudnn_autotune(tmp_path):
    acc = make_accelerator(parse_config([]), tmp_path)
    assert acc.device.type == "cuda" and torch.backends.cudnn.benchmark
    expected = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "no"
    assert acc.mixed_precision == expected
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    assert make_accelerator(parse_config(["--mixed-precision", "no"]), tmp_path).mixed_precision == "no"


def test_adamw_is_fused_on_cuda():
    import timm

    from trainer.engine.optim import build_optim

    model = timm.create_model("test_resnet", num_classes=3).cuda()
    optimizer, _, _ = build_optim(model, parse_config(["--opt", "adamw"]), steps_per_epoch=10)
    assert optimizer.defaults["fused"] is True


def test_uint8_batch_is_normalised_on_the_gpu_like_on_the_cpu():
    from trainer.data.images import DevicePreprocess

    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    pre = DevicePreprocess({"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}, None, True, batch_crop=False)
    gpu = pre(x.cuda())
    assert gpu.device.type == "cuda" and gpu.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gpu.cpu(), pre(x))


def test_compiled_bf16_training_steps_keep_timm_state_dict_keys(tmp_path):
    import timm

    from trainer.engine.optim import build_optim

    cfg = parse_config(["--torch-compile"])
    acc = make_accelerator(cfg, tmp_path)
    model = timm.create_model("test_resnet", num_classes=3).to(memory_format=torch.channels_last)
    optimizer, _, _ = build_optim(model, cfg, steps_per_epoch=4)
    model, optimizer = acc.prepare(model, optimizer)
    acc.unwrap_model(model).compile()  # as build_context does for --torch-compile
    x = torch.randn(16, 3, 32, 32, device=acc.device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (16,), device=acc.device)
    losses = []
    for _ in range(4):
        with acc.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        acc.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert not any(k.startswith("_orig_mod") for k in acc.unwrap_model(model).state_dict())


FSDP_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
num_processes: 1
mixed_precision: bf16
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: Block
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_reshard_after_forward: true
"""


def test_fsdp_run_saves_the_full_model_that_plain_timm_loads(tmp_path):
    """docs/training.md's FSDP recipe on one GPU: the checkpoint holds the whole model, not a shard."""
    import subprocess
    import sys

    import timm

    from tests.helpers.cli import REPO, cli_env

    (tmp_path / "fsdp.yaml").write_text(FSDP_CONFIG)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "fsdp.yaml"),
           "trainer/train.py", "--dataset", "fashion-mnist", "--model", "test_vit", "--no-pretrained",
           "--img-size", "32", "--max-steps", "4", "--max-train-samples", "256", "--max-eval-samples", "64",
           "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    reference = timm.create_model("test_vit", num_classes=10, img_size=32)
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}
