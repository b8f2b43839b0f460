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


STEP_ARGS = ["trainer/train.py", "--dataset", "fashion-mnist", "--model", "test_resnet", "--no-pretrained",
             "--img-size", "28", "--crop-pct", "1.0", "--epochs", "2", "--batch-size", "32", "--lr", "3e-3",
             "--max-train-samples", "320", "--max-eval-samples", "64", "--log-interval", "1", "--num-workers", "0",
             "--checkpointing-steps", "5"]


def _step_lines(stdout: str) -> dict[int, str]:
    """{step: its log line} ('step N loss X lr Y', throughput cut off: it differs between runs)."""
    return {int(line.split()[1]): " ".join(line.split()[:6]) for line in stdout.splitlines()
            if line.startswith("step ")}


def kill_after_state(args: list[str], out, state: str) -> None:
    """Run the training CLI into `out` and kill -9 it right after it says it saved `state` (e.g. step_15)."""
    proc = subprocess.Popen([sys.executable, *args, "--output-dir", str(out)], cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("saved state") and state in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_step_checkpoint_resume_after_sigkill_lands_on_the_step_and_the_same_next_batch(tmp_path):
    """--checkpointing-steps 5, kill -9 right after step 15's state (5 batches into epoch 2): --resume auto starts
    at step 16 with the batch the uninterrupted run trained on there, and ends with bit-identical weights."""
    from safetensors.torch import load_file

    straight = run_cli(*STEP_ARGS, "--output-dir", str(tmp_path / "straight"))
    killed = tmp_path / "killed"
    kill_after_state(STEP_ARGS, killed, "step_15")
    assert sorted(p.name for p in (killed / "state").iterdir() if p.is_dir()) == ["step_15"]  # older ones removed
    resumed = run_cli(*STEP_ARGS, "--output-dir", str(killed), "--resume", "auto")
    assert "state/step_15 (epoch 1 done, step 15, 5 batches into epoch 2)" in resumed.stdout
    before, after = _step_lines(straight.stdout), _step_lines(resumed.stdout)
    assert min(after) == 16 and all(after[s] == before[s] for s in after)  # step 16 on: the same batches, losses
    a, b = load_file(str(tmp_path / "straight" / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a)
    history = [json.loads((d / "eval" / "history.json").read_text()) for d in (tmp_path / "straight", killed)]
    assert [r["train_loss"] for r in history[0]] == [r["train_loss"] for r in history[1]]


def torch_equal(a, b) -> bool:
    """Bit-equal tensors."""
    import torch

    return bool(torch.equal(a, b))


STREAM_ARGS = ["trainer/train.py", "--dataset", "fashion-mnist", "--streaming", "--shuffle-buffer", "64",
               "--model", "test_resnet", "--no-pretrained", "--img-size", "28", "--crop-pct", "1.0", "--epochs", "2",
               "--batch-size", "32", "--max-train-samples", "320", "--max-eval-samples", "64", "--log-interval", "1",
               "--num-workers", "0", "--checkpointing-steps", "5"]


def test_streamed_run_resumes_from_a_step_checkpoint_after_sigkill(tmp_path):
    """--streaming with --checkpointing-steps 5 (10 batches per epoch), kill -9 right after step 15's state:
    --resume auto reads the stream past the 5 batches of epoch 2 already trained on, logs steps 16-20 only and
    finishes both epochs."""
    out = tmp_path / "run"
    kill_after_state(STREAM_ARGS, out, "step_15")
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in (out / "state").iterdir() if p.is_dir()) == ["step_15"]
    resumed = run_cli(*STREAM_ARGS, "--output-dir", str(out), "--resume", "auto")
    assert "state/step_15 (epoch 1 done, step 15, 5 batches into epoch 2)" in resumed.stdout
    assert sorted(_step_lines(resumed.stdout)) == [16, 17, 18, 19, 20]  # the skipped batches are not trained again
    history = json.loads((out / "eval" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]  # epoch 1 from the killed process's state
    assert json.loads((out / "manifest.json").read_text())["dataset"]["streaming"] is True
    assert "checkpoint written to" in resumed.stdout and (out / "model.safetensors").is_file()
