"""Two processes on CPU (gloo) through `accelerate launch --multi_gpu`: same metrics, every sample once."""

from __future__ import annotations

import json
import socket

import pyarrow.parquet as pq
import pytest

from tests.helpers.cli import SMOKE, run_cli

pytestmark = pytest.mark.slow  # 2-process accelerate launch runs


def _launch(*args: str) -> list[str]:
    """`accelerate launch` with 2 processes on a free port (CPU: Accelerator(cpu=True) → MULTI_CPU)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), *args]


def test_eval_one_vs_two_processes_identical(smoke_run, tmp_path):
    common = ["trainer/validate.py", "--checkpoint", str(smoke_run), "--split", "test", "--max-eval-samples",
              "250", "--batch-size", "64"]
    run_cli(*common, "--output-dir", str(tmp_path / "one"))
    run_cli(*_launch(*common, "--output-dir", str(tmp_path / "two")))
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert one["num_processes"] == 1 and two["num_processes"] == 2  # the trap: --cpu silently runs one
    for key in ("accuracy", "top5_accuracy", "f1_macro", "precision_weighted", "recall_macro", "num_samples"):
        assert one[key] == two[key], key
    assert one["loss"] == pytest.approx(two["loss"], rel=1e-5)
    p1 = pq.read_table(tmp_path / "one" / "predictions.parquet").to_pandas()
    p2 = pq.read_table(tmp_path / "two" / "predictions.parquet").to_pandas()
    assert len(p2) == 250 and p2["index"].is_unique and sorted(p2["index"]) == sorted(p1["index"])
    assert list(p1["pred"]) == list(p2["pred"]) and list(p1["label"]) == list(p2["label"])


def test_two_process_training_writes_output_once(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(*_launch("trainer/train.py", *SMOKE, "--output-dir", str(out)))
    assert proc.stdout.count("checkpoint written to") == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hardware"]["num_processes"] == 2
    assert manifest["hardware"]["distributed_type"] == "DistributedType.MULTI_CPU"
    preds = pq.read_table(out / "eval" / "predictions.parquet").to_pandas()
    for split, n in (("val", 128), ("test", 128)):
        rows = preds[preds["split"] == split]
        assert len(rows) == n and rows["index"].is_unique
    assert not list(out.glob(".staging*")) and not list(out.glob("state/.tmp*"))


def test_two_process_streaming_training_shards_the_stream(tmp_path):
    """Each rank reads its own shards (split_dataset_by_node) and takes the same steps, so no all-reduce hangs."""
    out = tmp_path / "run"
    proc = run_cli(*_launch("trainer/train.py", *SMOKE, "--streaming", "--shuffle-buffer", "64",
                            "--output-dir", str(out)))
    assert proc.stdout.count("checkpoint written to") == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hardware"]["num_processes"] == 2 and manifest["dataset"]["streaming"] is True
    history = json.loads((out / "eval" / "history.json").read_text())
    assert [row["step"] for row in history] == [2, 4]  # 256 rows / (64 x 2 ranks) = 2 steps per epoch
    preds = pq.read_table(out / "eval" / "predictions.parquet").to_pandas()
    assert len(preds[preds["split"] == "val"]) == 128 and preds[preds["split"] == "val"]["index"].is_unique


def test_a_nan_on_one_rank_stops_every_rank_with_a_message(tmp_path):
    """Rank 1 alone sees a NaN loss: both processes stop within seconds (no collective left waiting)."""
    out = tmp_path / "run"
    proc = run_cli(*_launch("tests/helpers/nan_on_rank1.py", *SMOKE, "--max-steps", "6", "--output-dir", str(out)),
                   check=False, timeout=180)
    assert proc.returncode != 0
    assert proc.stderr.count("loss became non-finite at step 2") == 2, proc.stderr[-2000:]  # one line per rank
    assert "on a process" in proc.stderr and not (out / "manifest.json").exists()
