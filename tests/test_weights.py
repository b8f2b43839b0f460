"""trainer.weights: the packaged EfficientNet-Lite0 ImageNet weights, converted offline for timm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.cli import run_cli
from trainer import weights

ARCH = "tf_efficientnet_lite0"
# What these weights predict for sklearn's two sample photos (checked by hand; random weights would not).
PALACE, DAISY = 698, 985


@pytest.fixture(scope="module")
def lite0(tmp_path_factory) -> Path:
    """One real conversion, shared by this module's tests (~3 s)."""
    return weights.convert_lite0(tmp_path_factory.mktemp("weights") / "lite0.safetensors")


@pytest.fixture
def no_hub(monkeypatch) -> None:
    """Fail loudly if timm tries to download anything instead of reading the local file."""
    import timm.models._builder as builder

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download pretrained weights")

    for name in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(builder, name, refuse)


def create(path: Path, num_classes: int) -> torch.nn.Module:
    """The model exactly as trainer.model builds it from --pretrained-file."""
    import timm

    return timm.create_model(ARCH, pretrained=True, num_classes=num_classes,
                             pretrained_cfg_overlay=dict(file=str(path))).eval()


def test_file_is_timm_named_safetensors(lite0: Path) -> None:
    from safetensors import safe_open

    src = weights.load_packaged_state(weights.packaged_lite0_file())
    with safe_open(str(lite0), "pt") as f:
        keys = list(f.keys())
        assert f.metadata()["format"] == "pt"
        tensors = {k: f.get_tensor(k) for k in keys}
    assert len(keys) == weights.N_TENSORS == len(src) == 296
    assert sorted(keys) == sorted(weights.timm_lite0_state())
    # num_batches_tracked exists on both sides (49 BatchNorms) and is kept, as int64 scalars.
    tracked = [k for k in keys if k.endswith("num_batches_tracked")]
    assert len(tracked) == 49 and all(tensors[k].dtype == torch.int64 for k in tracked)
    # Values are the packaged ones, moved by position.
    assert torch.equal(tensors["conv_stem.weight"], src["_conv_stem.weight"])
    assert torch.equal(tensors["blocks.0.0.conv_dw.weight"], src["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(tensors["classifier.weight"], src["_fc.weight"])
    assert [p.name for p in lite0.parent.iterdir()] == [lite0.name]  # no temp file left behind


def test_convert_is_idempotent(lite0: Path, monkeypatch) -> None:
    mtime = lite0.stat().st_mtime_ns
    monkeypatch.setattr(weights, "load_packaged_state", lambda path: pytest.fail("re-converted"))
    assert weights.convert_lite0(lite0) == lite0
    assert lite0.stat().st_mtime_ns == mtime


def test_imagenet_predictions_are_real(lite0: Path, no_hub) -> None:
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from timm.data import create_transform, resolve_data_config

    model = create(lite0, 1000)
    cfg = resolve_data_config({}, model=model)
    assert cfg["mean"] == cfg["std"] == (0.5, 0.5, 0.5)
    transform = create_transform(**cfg)
    samples = load_sample_images()
    names = [Path(f).name for f in samples.filenames]
    x = torch.stack([transform(Image.fromarray(a)) for a in samples.images])
    with torch.no_grad():
        probs = model(x).softmax(-1)
    top = dict(zip(names, probs.topk(5).indices.tolist(), strict=True))
    assert top["china.jpg"][0] == PALACE, top
    assert top["flower.jpg"][0] == DAISY, top
    assert probs.max(-1).values.min() > 0.2  # confident; random weights give ~1/1000


def test_new_head_keeps_the_body(lite0: Path, no_hub) -> None:
    packaged = create(lite0, 1000).state_dict()
    model = create(lite0, 10)
    state = model.state_dict()
    assert model.classifier.weight.shape == (10, 1280)
    assert all(torch.equal(v, packaged[k]) for k, v in state.items() if not k.startswith("classifier."))


def test_cli_prints_the_path(lite0: Path) -> None:
    proc = run_cli("-m", "trainer.weights", "--out", str(lite0), timeout=120)
    assert proc.stdout.strip() == str(lite0)


def test_default_path_follows_cache_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIMM_SPACE_CACHE", str(tmp_path))
    assert weights.default_lite0_path() == tmp_path / "weights" / "tf_efficientnet_lite0.in1k.safetensors"


def _bn(prefix: str, c: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": torch.ones(c), f"{prefix}.bias": torch.zeros(c),
            f"{prefix}.running_mean": torch.zeros(c), f"{prefix}.running_var": torch.ones(c),
            f"{prefix}.num_batches_tracked": torch.tensor(0)}


def test_rename_by_position_renames() -> None:
    src = {"_conv.weight": torch.randn(4, 3, 3, 3), **_bn("_bn0", 4)}
    dst = {"conv.weight": torch.zeros(4, 3, 3, 3), **_bn("bn1", 4)}
    out = weights.rename_by_position(src, dst)
    assert list(out) == list(dst)
    assert torch.equal(out["conv.weight"], src["_conv.weight"])


def test_rename_by_position_names_the_first_shape_mismatch() -> None:
    src = weights.load_packaged_state(weights.packaged_lite0_file())
    dst = weights.timm_lite0_state()
    src["_blocks.3._bn1.running_var"] = torch.ones(7)
    with pytest.raises(ValueError, match=r"tensor \d+: source '_blocks\.3\._bn1\.running_var' \(7,\)"):
        weights.rename_by_position(src, dst)


def test_rename_by_position_catches_shifted_buffers() -> None:
    src = {"_conv.weight": torch.randn(4, 3, 3, 3), **_bn("_bn0", 4)}
    dst = {"conv.weight": torch.zeros(4, 3, 3, 3), **_bn("bn1", 4)}
    del src["_bn0.num_batches_tracked"]
    with pytest.raises(ValueError, match="source has 5 tensors, target has 6"):
        weights.rename_by_position(src, dst)
    # Same count and shapes, but bias/weight swapped: only the leaf-name check can see it.
    src = {"_conv.weight": src["_conv.weight"], "_bn0.bias": torch.zeros(4), "_bn0.weight": torch.ones(4),
           **{k: v for k, v in _bn("_bn0", 4).items() if not k.endswith(("weight", "bias"))}}
    with pytest.raises(ValueError, match=r"tensor 1: source '_bn0\.bias'"):
        weights.rename_by_position(src, dst)


def test_failed_save_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import safetensors.torch

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    out = tmp_path / "sub" / "w.safetensors"
    with pytest.raises(OSError, match="disk full"):
        weights.save_atomically({"a": torch.zeros(1)}, out, {"format": "pt"})
    assert list(out.parent.iterdir()) == []
