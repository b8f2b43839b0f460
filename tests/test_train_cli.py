"""End to end through the real CLI: the checkpoint contract that the app and the Hub rely on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tests.helpers.cli import REPO, SMOKE, run_cli, tree_hash

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_checkpoint_files(smoke_run):
    for name in ("config.json", "model.safetensors", "train_config.json", "manifest.json", "eval/metrics.json",
                 "eval/per_class.json", "eval/confusion_matrix.json", "eval/predictions.parquet",
                 "eval/samples.json", "eval/history.json", "eval/reliability.json", "eval/confusion_matrix.png",
                 "eval/reliability.png", "eval/preflight.json", "README.md", "resolved_config.json"):
        assert (smoke_run / name).is_file(), name
    card = (smoke_run / "README.md").read_text()
    assert "library_name: timm" in card and "model-index:" in card and f"local-dir:{smoke_run}" in card
    assert ".staging" not in card and "Fashion-MNIST by Zalando Research (MIT license)" in card
    assert not list(smoke_run.glob("*.bin")) and not list(smoke_run.glob("*.pth"))  # never a pickle
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    # 8: request + resolved configs; 7: budget table, probe row; 6: task; 5: ood; 4: ONNX; 3: preflight
    assert manifest["schema_version"] == 8
    config = json.loads((smoke_run / "config.json").read_text())
    assert config["task"] == "single_label" and "thresholds" not in config
    ood = config["ood"]
    assert ood["score"] == "energy" and ood["val_samples"] == 128 and 0.9 <= ood["val_recall"] <= 1.0
    assert manifest["dataset"]["sizes"] == {"train": 256, "val": 128, "test": 128}
    assert manifest["command"][-1] == str(smoke_run)
    metrics = json.loads((smoke_run / "eval/metrics.json").read_text())
    assert metrics["primary_split"] == "test" and metrics["test"]["num_samples"] == 128
    for key in ("accuracy", "top5_accuracy", "f1_macro", "precision_weighted", "ece", "ece_calibrated", "loss",
                "latency_ms_batch1"):
        assert key in metrics["test"], key
    cm = json.loads((smoke_run / "eval/confusion_matrix.json").read_text())
    assert cm["labels"] == FASHION and np.asarray(cm["matrix"]).sum() == 128
    assert metrics["test"]["tta"]["mode"] == "flip"  # SMOKE trains with --tta flip: reported beside, not instead
    assert metrics["test"]["tta"]["loss"] != metrics["test"]["loss"] and "latency_hardware" in metrics["test"]
    assert "Test-time augmentation (`flip`)" in card and "Latency per input" in card
    samples = json.loads((smoke_run / "eval/samples.json").read_text())
    assert len(samples["top_loss"]) == 24 and (smoke_run / "eval" / samples["top_loss"][0]["file"]).is_file()
    # Grad-CAM of the class each top-loss sample was mistaken for, as large as the thumbnail is small
    from PIL import Image

    overlay = Image.open(smoke_run / "eval" / samples["top_loss"][0]["explain"])
    assert min(overlay.size) >= 160 and "explain_error" not in samples
    assert 0 <= samples["top_loss"][0]["prob_true"] <= samples["top_loss"][0]["prob"] <= 1
    assert any(k.split(",")[0] == k.split(",")[1] for k in samples["cells"])  # correct cells are kept too
    preflight = json.loads((smoke_run / "eval/preflight.json").read_text())
    assert preflight["splits"]["train"]["rows"] == 256 and preflight["leakage"] is False
    history = json.loads((smoke_run / "eval/history.json").read_text())
    assert history[0]["train_img_per_s"] > 0  # the loop's throughput meter (bench/bench_train.py reads its logs)


def test_plain_timm_loads_checkpoint_and_reproduces_logits(smoke_run):
    import timm
    from timm.data import resolve_data_config

    from trainer.data.builtin import load_embedded
    from trainer.data.images import eval_transform, to_rgb

    model = timm.create_model(f"local-dir:{smoke_run}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == FASHION
    data_cfg = resolve_data_config({}, model=model)
    train_cfg = json.loads((smoke_run / "config.json").read_text())["pretrained_cfg"]
    assert data_cfg["input_size"] == (3, 32, 32) and tuple(train_cfg["input_size"]) == (3, 32, 32)
    for key in ("mean", "std", "crop_pct", "interpolation"):
        assert tuple(np.atleast_1d(data_cfg[key])) == tuple(np.atleast_1d(train_cfg[key])), key
    table = pq.read_table(smoke_run / "eval/predictions.parquet").to_pandas()
    test_rows = table[table["split"] == "test"]
    assert sorted(test_rows["index"]) == list(range(128)) or len(set(test_rows["index"])) == 128
    # rebuild the test subset exactly as training did, then compare logits row by row
    from trainer.config import DataConfig
    from trainer.data.bundle import build_data

    bundle = build_data(DataConfig(max_train_samples=256, max_eval_samples=128), seed=42)
    transform = eval_transform(data_cfg)
    rows = test_rows.head(16)
    x = torch.stack([transform(to_rgb(bundle.test[int(i)]["image"])) for i in rows["index"]])
    with torch.no_grad():
        logits = model(x).numpy()
    np.testing.assert_allclose(logits, np.stack(rows["logits"].to_numpy()), atol=1e-4, rtol=1e-4)
    assert list(logits.argmax(1)) == list(rows["pred"])
    assert load_embedded("fashion-mnist")["test"].features["label"].names == FASHION


def test_train_config_saved_and_reloadable(smoke_run):
    from trainer.flags import load_train_config

    cfg = load_train_config(smoke_run / "train_config.json")
    assert cfg.model.model == "test_resnet" and cfg.max_steps == 4 and cfg.model.pretrained is False


def test_config_of_a_run_reruns_it_exactly(smoke_run, tmp_path):
    """`--config <run>/train_config.json` re-runs the request (the same seed and data: the same model, to the
    float); its resolved_config.json matches the first run's."""
    out = tmp_path / "again"
    run_cli("trainer/train.py", "--config", str(smoke_run / "train_config.json"), "--output-dir", str(out))
    first, again = (json.loads((d / "resolved_config.json").read_text()) for d in (smoke_run, out))
    assert {**first, "output_dir": None} == {**again, "output_dir": None}
    m1, m2 = (json.loads((d / "eval" / "metrics.json").read_text())["test"] for d in (smoke_run, out))
    assert m1["accuracy"] == m2["accuracy"] and m1["loss"] == pytest.approx(m2["loss"], abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet5O"], "unknown timm model 'resnet5O'. Did you mean: resnet50"),
    (["--val-pct", "1.5"], "--val-pct must be between 0 and 1"),
    (["--image-column", "pixels"], "--image-column 'pixels' is not a column; columns: ['image', 'label']"),
    (["--train-split", "training"], "--train-split 'training' not found; the dataset has splits ['train', 'test']"),
    (["--dataset", "./no/such/dir"], "no such directory"),
    (["--folds", "1"], "--folds must be 0 (off) or >= 2"),
])
def test_bad_input_clear_message_and_output_untouched(tmp_path, args, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    before = tree_hash(out)
    flags = list(SMOKE)
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in flags:
            flags[flags.index(flag) + 1] = value
        else:
            flags += [flag, value]
    proc = run_cli("trainer/train.py", *flags, "--output-dir", str(out), check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_hash(out) == before


@pytest.mark.slow
def test_refuses_to_mix_runs_without_resume(smoke_run):
    before = tree_hash(smoke_run)
    proc = run_cli("trainer/train.py", *SMOKE, "--output-dir", str(smoke_run), check=False)
    assert proc.returncode == 2 and "holds a previous run. Use --resume auto" in proc.stderr
    assert tree_hash(smoke_run) == before


@pytest.mark.slow
def test_one_sample_class_in_imagefolder_via_cli(tmp_path):
    from tests.helpers.data import make_imagefolder

    root = make_imagefolder(tmp_path / "photos", {"cat": 6, "dog": 6, "unicorn": 1})
    out = tmp_path / "out"
    proc = run_cli("trainer/train.py", "--dataset", str(root), "--model", "test_resnet", "--no-pretrained",
                   "--output-dir", str(out), check=False)
    assert proc.returncode == 2 and "class(es) ['unicorn'] have only 1 sample" in proc.stderr
    assert "Traceback" not in proc.stderr and tree_hash(out) == "absent"


@pytest.mark.slow
def test_folds_write_per_fold_checkpoints_and_summary(tmp_path):
    out = tmp_path / "cv"
    flags = [f for f in SMOKE]
    flags[flags.index("--max-steps") + 1] = "2"
    run_cli("trainer/train.py", *flags, "--folds", "2", "--output-dir", str(out))
    summary = json.loads((out / "folds" / "summary.json").read_text())
    assert summary["folds"] == 2 and summary["best_fold"] in (0, 1)
    acc = summary["summary"]["val"]["accuracy"]
    assert len(acc["values"]) == 2 and acc["mean"] == pytest.approx(np.mean(acc["values"]))
    for k in (0, 1):
        assert (out / "folds" / str(k) / "model.safetensors").is_file()
    best = out / "folds" / str(summary["best_fold"])
    assert (out / "model.safetensors").read_bytes() == (best / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_torch_compile_run_writes_a_plain_timm_checkpoint(tmp_path):
    """--torch-compile compiles in place: the weights keep timm's key names (no `_orig_mod.`) and load plainly."""
    import timm

    out = tmp_path / "run"
    flags = [a if a != "4" else "2" for a in SMOKE]  # 2 steps: the compile itself is the slow part on CPU
    proc = run_cli("trainer/train.py", *flags, "--torch-compile", "--output-dir", str(out))
    assert "checkpoint written to" in proc.stdout
    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert model.num_classes == 10


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    """Another smoke checkpoint (other seed): the 'new' one written over the session's smoke run."""
    out = tmp_path_factory.mktemp("second") / "run"
    run_cli("trainer/train.py", *SMOKE, "--seed", "1", "--output-dir", str(out))
    return out


def _served(path: Path) -> tuple:
    return tuple((path / n).read_bytes() for n in ("config.json", "model.safetensors", "eval/metrics.json"))


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_weights", "after_config", "before_manifest", "after_manifest"])
def test_kill_during_a_checkpoint_rewrite_leaves_the_old_or_the_new_never_a_mix(smoke_run, second_run, tmp_path,
                                                                                 point):
    import shutil
    import subprocess
    import sys

    from trainer.checkpoint.integrity import consistent_dir, restore
    from trainer.checkpoint.read import open_checkpoint

    out = tmp_path / "out"
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns("state", "logs"))
    old, new = _served(out), _served(second_run)
    assert old != new
    proc = subprocess.run([sys.executable, "tests/helpers/kill_during_install.py", str(out), str(second_run), point],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL, at the named point
    raw = _served(out)
    if point == "after_weights":  # on disk: the new weights beside the old config, a mix plain timm would load
        assert raw[1] == new[1] and raw[0] == old[0]
    path, config = open_checkpoint(str(out))  # what the app and validate.py read
    got = _served(path)
    assert got in (old, new), point
    assert got == (new if point == "after_manifest" else old)
    restore(out)  # the next writer (or a push) first puts that set back in place
    assert consistent_dir(out, "out") == out and _served(out) == got


def test_a_file_changed_behind_the_manifest_is_refused(smoke_run, tmp_path):
    import shutil

    from trainer.checkpoint.read import open_checkpoint
    from trainer.errors import UserError

    out = tmp_path / "out"
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns("state", "logs"))
    assert set(json.loads((out / "manifest.json").read_text())["files"]) == {
        "config.json", "model.safetensors", "train_config.json", "resolved_config.json", "eval"}
    cfg = json.loads((out / "config.json").read_text())
    cfg["label_names"][0] = "edited"
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="config.json does not match manifest.json"):
        open_checkpoint(str(out))


def test_validate_reports_tta_beside_the_plain_numbers(smoke_run, tmp_path, audio_run, audio_env):
    plain = tmp_path / "plain"
    run_cli("trainer/validate.py", "--checkpoint", str(smoke_run), "--max-eval-samples", "64", "--output-dir",
            str(plain))
    out = tmp_path / "tta"
    proc = run_cli("trainer/validate.py", "--checkpoint", str(smoke_run), "--max-eval-samples", "64", "--tta",
                   "flip-crops", "--output-dir", str(out))
    metrics, before = (json.loads((d / "metrics.json").read_text()) for d in (out, plain))
    assert metrics["accuracy"] == before["accuracy"] and metrics["loss"] == pytest.approx(before["loss"])
    assert metrics["tta"]["mode"] == "flip-crops" and 0 <= metrics["tta"]["accuracy"] <= 1
    assert "with --tta flip-crops (plain" in proc.stdout
    refused = run_cli("trainer/validate.py", "--checkpoint", str(audio_run), "--dataset", "spoken-digits",
                      "--tta", "flip", "--output-dir", str(tmp_path / "a"), env=audio_env, check=False)
    assert refused.returncode == 2 and "on a spectrogram a mirror reverses time" in refused.stderr
