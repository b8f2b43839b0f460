"""Latency as a satisficing metric: the training run says whether it meets --latency-budget-ms, and compare.py
picks the most accurate checkpoint among those within a budget."""

from __future__ import annotations

import json
import shutil

import pytest


def test_the_run_records_p95_latency_and_the_budget(smoke_run):
    metrics = json.loads((smoke_run / "eval" / "metrics.json").read_text())["test"]
    assert 0 < metrics["latency_ms_batch1"] <= metrics["latency_ms_p95_batch1"]
    assert metrics["latency_budget_ms"] == 100000 and metrics["within_latency_budget"] is True


def _variant(smoke_run, root, name: str, accuracy: float, p95: float, hardware: str | None = None):
    """A copy of the smoke checkpoint whose test accuracy, p95 latency (and the hardware it was measured on) say
    what the test needs."""
    from trainer.checkpoint.integrity import digests

    out = root / name
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns("state", "logs"))
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    metrics["test"].update(accuracy=accuracy, latency_ms_p95_batch1=p95)
    if hardware is not None:
        metrics["test"]["latency_hardware"] = hardware
    (out / "eval" / "metrics.json").write_text(json.dumps(metrics))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"] = digests(out)  # an honest checkpoint: its manifest matches its files
    (out / "manifest.json").write_text(json.dumps(manifest))
    return str(out)


def test_compare_picks_the_most_accurate_within_the_budget(smoke_run, tmp_path, capsys):
    from trainer.compare import main

    big = _variant(smoke_run, tmp_path, "big", 0.93, 48.0)
    small = _variant(smoke_run, tmp_path, "small", 0.81, 4.0)
    medium = _variant(smoke_run, tmp_path, "medium", 0.88, 9.5)
    assert main([big, small, medium, "--latency-budget-ms", "10"])["checkpoint"] == medium
    lines = capsys.readouterr().out.splitlines()
    hardware = json.loads((smoke_run / "eval" / "metrics.json").read_text())["test"]["latency_hardware"]
    assert lines[0].endswith(f"test]  on {hardware}") and medium in lines[0]
    assert "(over budget)" in lines[2] and big in lines[2]
    assert main([big, small, medium])["checkpoint"] == big  # no budget: accuracy alone
    assert main([big, small, medium, "--latency-budget-ms", "5"])["checkpoint"] == small
    with pytest.raises(SystemExit) as exit_info:
        main([big, small, medium, "--latency-budget-ms", "1"])
    assert exit_info.value.code == 1 and "none of 3 checkpoint(s) meets the 1 ms budget" in capsys.readouterr().out


def test_compare_refuses_a_latency_budget_across_different_hardware(smoke_run, tmp_path, capsys):
    """Each line names the hardware of its latency; a budget over latencies from two machines is refused with what
    to do, and applied only when --allow-mixed-hardware says so."""
    from trainer.compare import main
    from trainer.errors import UserError

    gpu = _variant(smoke_run, tmp_path, "gpu", 0.93, 2.0, hardware="NVIDIA H100 80GB HBM3")
    cpu = _variant(smoke_run, tmp_path, "cpu", 0.81, 9.0, hardware="AMD EPYC (2 usable cores, 2 torch threads)")
    with pytest.raises(UserError, match="different or unrecorded hardware") as err:
        main([gpu, cpu, "--latency-budget-ms", "5"])
    assert all(word in str(err.value) for word in ("NVIDIA H100", "AMD EPYC", "--allow-mixed-hardware"))
    assert main([gpu, cpu])["checkpoint"] == gpu  # no budget: latency ranks nothing, the lines still say where
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("on NVIDIA H100 80GB HBM3")
    assert lines[1].endswith("on AMD EPYC (2 usable cores, 2 torch threads)")
    assert main([gpu, cpu, "--latency-budget-ms", "5", "--allow-mixed-hardware"])["checkpoint"] == gpu
    assert "warning: latencies from different hardware" in capsys.readouterr().out
