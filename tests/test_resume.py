"""kill -9 mid-epoch, then --resume auto: the run finishes as if it had never been interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.helpers.cli import REPO, cli_env, run_cli

pytestmark = pytest.mark.slow  # a training run killed with SIGKILL, then resumed

ARGS = ["trainer/train.py", "--dataset", "fashion-mnist", "--model", "test_resnet", "--no-pretrained",
        "--img-size", "28", "--crop-pct", "1.0", "--epochs", "3", "--batch-size", "64", "--lr", "3e-3",
        "--max-train-samples", "3000", "--max-eval-samples", "2000", "--log-interval", "5", "--num-workers", "0"]


def _val_accuracy(out) -> float:
    return json.loads((out / "eval" / "metrics.json").read_text())["val"]["accuracy"]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    straight = tmp_path / "straight"
    run_cli(*ARGS, "--output-dir", str(straight))

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *ARGS, "--output-dir", str(killed)], cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # bars go to stderr
    seen_state = False
    for line in proc.stdout:  # event-driven: kill once epoch 1's state is saved and epoch 2 is under way
        seen_state = seen_state or line.startswith("saved state")
        if seen_state and line.startswith("step 60 "):  # 46 steps per epoch → step 60 is mid epoch 2
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "manifest.json").exists() and (killed / "state" / "epoch_0").is_dir()

    resumed = run_cli(*ARGS, "--output-dir", str(killed), "--resume", "auto")
    assert "resumed from" in resumed.stdout and "epoch_0" in resumed.stdout
    history = json.loads((killed / "eval" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert json.loads((killed / "manifest.json").read_text())["dataset"]["sizes"]["val"] == 2000
    assert abs(_val_accuracy(killed) - _val_accuracy(straight)) <= 0.005


def test_resume_dir_must_be_our_state_layout_before_anything_is_unpickled(tmp_path):
    """--resume DIR unpickles RNG states and our TrainState: only <out>/state/epoch_N with our files is accepted."""
    from trainer.engine.loop import check_state_dir
    from trainer.errors import UserError

    good = tmp_path / "run" / "state" / "epoch_3"
    good.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.bin", "random_states_0.pkl", "random_states_1.pkl",
                 "custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "scaler.pt"):
        (good / name).write_bytes(b"x")
    check_state_dir(good, str(good))
    elsewhere = tmp_path / "downloads" / "weights"
    elsewhere.mkdir(parents=True)
    (elsewhere / "model.safetensors").write_bytes(b"x")
    (elsewhere / "custom_checkpoint_0.pkl").write_bytes(b"x")
    with pytest.raises(UserError, match="not a state dir of ours"):
        check_state_dir(elsewhere, str(elsewhere))
    (good / "payload.pkl").write_bytes(b"cos\nsystem\n")  # a pickle that would run code
    with pytest.raises(UserError, match=r"unexpected: \['payload.pkl'\].*Nothing was loaded"):
        check_state_dir(good, str(good))
    (good / "payload.pkl").unlink()
    (good / "custom_checkpoint_0.pkl").unlink()
    with pytest.raises(UserError, match="required"):
        check_state_dir(good, str(good))
