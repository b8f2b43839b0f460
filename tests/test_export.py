"""trainer/export.py: model.onnx checked and compared with timm, validate.py --backend onnx, pushed but not served."""

from __future__ import annotations

import json
import re
import shutil
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.cli import run_cli
from trainer.errors import UserError


def _copy(smoke_run: Path, dest: Path) -> Path:
    """The session checkpoint copied (no resume state), so other tests keep theirs untouched."""
    shutil.copytree(smoke_run, dest, ignore=shutil.ignore_patterns("state", "logs"))
    return dest


@pytest.fixture(scope="module")
def exported(smoke_run, tmp_path_factory):
    """A copy of the smoke checkpoint exported through the CLI with --dynamic-batch: (dir, the CLI's stdout)."""
    out = _copy(smoke_run, tmp_path_factory.mktemp("export") / "run")
    return out, run_cli("trainer/export.py", "--checkpoint", str(out), "--dynamic-batch").stdout


@pytest.mark.slow
def test_export_writes_a_checked_onnx_with_the_timm_logits(exported):
    import onnx
    import onnxruntime as ort
    import timm
    from PIL import Image

    from trainer.checkpoint.read import open_checkpoint
    from trainer.data.images import eval_transform, to_rgb

    out, stdout = exported
    onnx.checker.check_model(str(out / "model.onnx"))
    found = re.search(r"max \|Δlogit\| (\S+) over (\d+) inputs \(eval/samples thumbnails\)", stdout)
    assert found and float(found.group(1)) <= 1e-4, stdout
    assert "opset " in stdout and "dynamic batch" in stdout and "ONNX Runtime" in stdout
    report = json.loads((out / "eval/export.json").read_text())
    assert report["dynamic_batch"] and report["parity"]["max_abs_logit_diff"] <= 1e-4 and report["opset"] >= 18
    assert report["latency_ms_batch1"]["torch"] > 0 and report["latency_ms_batch1"]["onnxruntime"] > 0
    assert report["versions"]["torch"] == torch.__version__.split("+")[0] and report["file"] == "model.onnx"
    assert not list(out.glob(".*.tmp"))
    # our own parity on a batch of 3 real thumbnails: also proves the batch axis is dynamic
    config = json.loads((out / "config.json").read_text())
    transform = eval_transform(config["pretrained_cfg"])
    files = sorted((out / "eval/samples").glob("sample_*.png"))[:3]
    x = torch.stack([transform(to_rgb(Image.open(f))) for f in files])
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    with torch.no_grad():
        want = model(x).numpy()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == want.shape == (3, 10) and np.abs(got - want).max() <= 1e-4
    # eval/ is hashed in manifest.json: the report went in the way the trainer writes, so the app still opens it
    path, _ = open_checkpoint(str(out))
    assert path == out


@pytest.mark.slow
def test_validate_onnx_backend_gives_the_torch_numbers(exported, tmp_path):
    out, _ = exported
    metrics = {}
    for backend in ("torch", "onnx"):
        proc = run_cli("trainer/validate.py", "--checkpoint", str(out), "--max-eval-samples", "64", "--backend",
                       backend, "--output-dir", str(tmp_path / backend))
        metrics[backend] = json.loads((tmp_path / backend / "metrics.json").read_text())
    assert "ONNX Runtime: model.onnx" in proc.stdout and metrics["onnx"]["backend"] == "onnx"
    assert metrics["onnx"]["accuracy"] == metrics["torch"]["accuracy"] and metrics["onnx"]["num_samples"] == 64
    assert metrics["onnx"]["loss"] == pytest.approx(metrics["torch"]["loss"], abs=1e-5)


def test_validate_onnx_backend_refusals(smoke_run, tmp_path):
    from trainer import validate

    base = ["--checkpoint", str(smoke_run), "--backend", "onnx", "--output-dir", str(tmp_path)]
    with pytest.raises(UserError, match=r"model.onnx not found: run `python trainer/export.py --checkpoint"):
        validate.main(base)
    with pytest.raises(UserError, match="--tta runs the views through the torch model"):
        validate.main([*base, "--tta", "flip"])
    assert not (tmp_path / "metrics.json").exists()


def test_onnx_is_pushed_but_never_downloaded_by_the_app(tmp_path):
    from trainer.checkpoint.contract import MODEL_PATTERNS, ONNX, SERVED_PATTERNS
    from trainer.hub.push import checkpoint_files

    for name in ("config.json", "model.safetensors", ONNX, "eval/export.json", ".model.onnx.tmp", "state/x.bin"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    pushed = {p.relative_to(tmp_path).as_posix() for p in checkpoint_files(tmp_path)}
    assert pushed == {"config.json", "model.safetensors", ONNX, "eval/export.json"}
    assert not any(fnmatch(ONNX, pattern) for pattern in [*SERVED_PATTERNS, *MODEL_PATTERNS])


def test_a_failed_export_names_the_architecture_and_leaves_nothing(smoke_run, tmp_path, monkeypatch):
    from trainer import export

    out = _copy(smoke_run, tmp_path / "run")

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::frobnicate\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(UserError, match=r"ONNX export of test_resnet failed .*RuntimeError: Unsupported operator"):
        export.main(["--checkpoint", str(out)])
    assert not (out / "model.onnx").exists() and not list(out.glob(".*.tmp"))
    assert not (out / "eval/export.json").exists()


def test_a_parity_failure_exits_without_a_model_onnx(smoke_run, tmp_path, monkeypatch):
    from trainer import export

    out = _copy(smoke_run, tmp_path / "run")
    monkeypatch.setattr(export, "export_onnx", lambda model, example, dynamic, opset, path, arch: path.write_bytes(b""))
    monkeypatch.setattr(export, "opset_of", lambda path: 20)
    monkeypatch.setattr(export, "check_and_compare", lambda *a: {"max_abs_logit_diff": 3e-3, "max_abs_logit": 9.0,
                                                                 "threads": 1, "latency_ms_batch1": {}})
    with pytest.raises(UserError, match=r"parity check failed for test_resnet: max \|Δlogit\| 0.003 > 0.0001"):
        export.main(["--checkpoint", str(out)])
    assert not (out / "model.onnx").exists() and not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_audio_checkpoint_exports_the_spectrogram_model(tmp_path, capsys):
    """A tiny synthetic audio checkpoint (1 × 32 mels × 51 frames), in process: cheaper than the audio smoke run."""
    import timm

    from trainer import export
    from trainer.checkpoint.write import save_model_files
    from trainer.config import AudioConfig

    audio = AudioConfig(clip_seconds=0.5, n_mels=32, spec_mean=-50.0, spec_std=20.0)
    model = timm.create_model("test_resnet", num_classes=2, in_chans=1, pretrained=False).eval()
    data_cfg = {"input_size": (1, audio.n_mels, audio.frames), "mean": (0.0,), "std": (1.0,),
                "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}
    save_model_files(model, tmp_path, data_cfg, ["yes", "no"], audio=audio.to_block())
    report = export.main(["--checkpoint", str(tmp_path)])
    stdout = capsys.readouterr().out
    assert "the log-mel front end stays in torch: trainer/audio/" in stdout and "(1, 32, 51)" in stdout
    assert report["modality"] == "audio" and report["input"]["shape"] == [1, 1, 32, 51]
    assert report["parity"]["source"].startswith("seeded random waves through the log-mel front end")
    assert report["parity"]["max_abs_logit_diff"] <= 1e-4 and (tmp_path / "model.onnx").is_file()
    assert json.loads((tmp_path / "eval/export.json").read_text())["front_end"].startswith("log-mel")
