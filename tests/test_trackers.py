"""--log-with tensorboard,trackio through the real CLI: project and run names, step rows, epoch rows, final metrics,
one tracker run per fold; both read back from what the trackers wrote (TensorBoard event files, trackio's local
SQLite database). trackio runs offline: its database goes to TRACKIO_DIR, no Space, no server, no dashboard."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli

TINY = ["--dataset", "fashion-mnist", "--model", "test_resnet", "--no-pretrained", "--img-size", "16",
        "--max-train-samples", "64", "--max-eval-samples", "16", "--batch-size", "16",
        "--log-with", "tensorboard,trackio"]
# a token-shaped value in the environment: scrubbed from the hyper-parameters every tracker receives
FAKE_TOKEN = "hf_trackerTestTokenAbcdefghijklmnopqrs"
# what would send trackio to a Space or a server instead of its local database
REMOTE_ENV = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "TRACKIO_DATASET_ID", "TRACKIO_BUCKET_ID", "SYSTEM",
              "SPACE_ID")


def _train(tmp: Path, *flags: str) -> dict:
    """One CLI run with trackio's database in tmp/trackio and any request for the network sent to a closed port."""
    trackio_dir = tmp / "trackio"
    with pytest.MonkeyPatch.context() as mp:
        for key in REMOTE_ENV:
            mp.delenv(key, raising=False)
        proc = run_cli("trainer/train.py", *TINY, *flags, env={
            "TRACKIO_DIR": str(trackio_dir), "HF_TOKEN": FAKE_TOKEN, "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}, timeout=300)
    return {"out": tmp / "run", "trackio": trackio_dir, "log": proc.stdout + proc.stderr}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict:
    """6 steps (4 per epoch: 2 epochs), loss and LR every 2 steps; default project and run names."""
    tmp = tmp_path_factory.mktemp("trackers_single")
    return _train(tmp, "--max-steps", "6", "--log-interval", "2", "--output-dir", str(tmp / "run"))


@pytest.fixture(scope="module")
def folds(tmp_path_factory) -> dict:
    """--folds 2, 2 steps each, a row every step, named project and run."""
    tmp = tmp_path_factory.mktemp("trackers_folds")
    return _train(tmp, "--folds", "2", "--max-steps", "2", "--log-interval", "1", "--tracker-project", "proj",
                  "--run-name", "exp", "--output-dir", str(tmp / "run"))


def trackio_rows(trackio_dir: Path, project: str) -> dict:
    """{run name: [(step, metrics dict)…]} from trackio's local database of `project` (trackio 0.43 layout)."""
    with sqlite3.connect(trackio_dir / f"{project}.db") as db:
        rows = db.execute("SELECT run_name, step, metrics FROM metrics ORDER BY id").fetchall()
    runs: dict = {}
    for name, step, metrics in rows:
        runs.setdefault(name, []).append((step, json.loads(metrics)))
    return runs


def trackio_config(trackio_dir: Path, project: str, run: str) -> dict:
    """The hyper-parameters trackio stored for `run`."""
    with sqlite3.connect(trackio_dir / f"{project}.db") as db:
        (config,) = db.execute("SELECT config FROM configs WHERE run_name = ?", (run,)).fetchone()
    return json.loads(config)


def tensorboard_scalars(run_dir: Path) -> dict:
    """{tag: {step: value}} of the event files TensorBoard wrote in run_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def steps_with(rows: list, key: str) -> list[int]:
    return [step for step, metrics in rows if key in metrics]


@pytest.mark.slow
def test_trackio_single_run(single):
    assert f"Trackio metrics logged to: {single['trackio']}" in single["log"]  # local mode, our directory
    assert "Running on" not in single["log"]  # no dashboard was launched
    assert [p.name for p in single["trackio"].glob("*.db")] == ["fashion-mnist.db"]  # project: the dataset's name
    runs = trackio_rows(single["trackio"], "fashion-mnist")
    assert list(runs) == ["run"]  # run: the --output-dir folder's name
    rows = runs["run"]
    assert steps_with(rows, "loss") == steps_with(rows, "lr") == [2, 4, 6]  # every --log-interval steps
    assert all(m["lr"] > 0 for _, m in rows if "lr" in m)
    assert steps_with(rows, "val_accuracy") == [4, 6]  # one row per epoch, at its last step
    assert [m["epoch"] for _, m in rows if "val_accuracy" in m] == [1, 2]
    history = json.loads((single["out"] / "eval" / "history.json").read_text())
    assert [m["val_accuracy"] for _, m in rows if "val_accuracy" in m] == [h["val_accuracy"] for h in history]
    (final,) = [m for _, m in rows if "final_test_accuracy" in m]  # logged once, at the end
    metrics = json.loads((single["out"] / "eval" / "metrics.json").read_text())
    assert final["final_test_accuracy"] == metrics["test"]["accuracy"]
    assert final["final_val_loss"] == metrics["val"]["loss"]
    config = trackio_config(single["trackio"], "fashion-mnist", "run")
    assert config["max_steps"] == 6 and config["log_interval"] == 2
    assert "hub_token" not in config and FAKE_TOKEN not in json.dumps(config)


@pytest.mark.slow
def test_tensorboard_single_run(single):
    run_dir = single["out"] / "logs" / "fashion-mnist" / "run"  # <out>/logs/<project>/<run>
    scalars = tensorboard_scalars(run_dir)
    assert sorted(scalars["loss"]) == sorted(scalars["lr"]) == [2, 4, 6]
    assert sorted(scalars["val_accuracy"]) == [4, 6] and sorted(scalars["train_loss"]) == [4, 6]
    metrics = json.loads((single["out"] / "eval" / "metrics.json").read_text())
    assert scalars["final_test_accuracy"] == {6: pytest.approx(metrics["test"]["accuracy"])}
    assert "step" not in scalars  # the step is the x axis, not a curve
    hparams = list(run_dir.rglob("hparams.yml"))
    assert len(hparams) == 1 and "max_steps: 6" in hparams[0].read_text()
    for f in run_dir.rglob("*"):
        assert not f.is_file() or FAKE_TOKEN.encode() not in f.read_bytes(), f
    assert FAKE_TOKEN.encode() not in (single["trackio"] / "fashion-mnist.db").read_bytes()


@pytest.mark.slow
def test_folds_one_tracker_run_per_fold(folds):
    runs = trackio_rows(folds["trackio"], "proj")
    assert list(runs) == ["exp-fold0", "exp-fold1"]
    tb_runs = sorted(p.name for p in (folds["out"] / "logs" / "proj").iterdir())
    assert tb_runs == ["exp-fold0", "exp-fold1"]
    for k in (0, 1):
        name = f"exp-fold{k}"
        rows, scalars = runs[name], tensorboard_scalars(folds["out"] / "logs" / "proj" / name)
        metrics = json.loads((folds["out"] / "folds" / str(k) / "eval" / "metrics.json").read_text())
        assert steps_with(rows, "loss") == steps_with(rows, "lr") == [1, 2], name  # each fold's steps from 1
        assert sorted(scalars["loss"]) == sorted(scalars["lr"]) == [1, 2], name
        assert steps_with(rows, "val_accuracy") == [2] and sorted(scalars["val_accuracy"]) == [2], name
        (final,) = [m for _, m in rows if "final_val_accuracy" in m]
        assert final["final_val_accuracy"] == metrics["val"]["accuracy"], name  # this fold's own held-out part
        assert scalars["final_val_accuracy"] == {2: pytest.approx(metrics["val"]["accuracy"])}, name
        assert trackio_config(folds["trackio"], "proj", name)["folds"] == 2


def test_names_default_and_explicit():
    from trainer.config import DataConfig, TrainConfig
    from trainer.engine.trackers import project_name, run_name

    cfg = TrainConfig(data=DataConfig(dataset="org/street signs"), output_dir="outputs/exp-7")
    assert (project_name(cfg), run_name(cfg)) == ("street-signs", "exp-7")
    cfg = TrainConfig(data=DataConfig(dataset="/data/imgs/"), output_dir="o", tracker_project="p", run_name="r")
    assert (project_name(cfg), run_name(cfg)) == ("p", "r")


def test_bad_names_and_missing_tracker_are_refused():
    from types import SimpleNamespace

    from trainer.config import TrainConfig
    from trainer.engine.trackers import run_name, start_run
    from trainer.errors import UserError

    with pytest.raises(UserError, match="--run-name 'a/b'"):
        run_name(TrainConfig(run_name="a/b"))
    # Accelerate drops a tracker whose package is missing from log_with without a word
    accelerator = SimpleNamespace(log_with=["tensorboard"], is_main_process=True)
    with pytest.raises(UserError, match="--log-with trackio: not installed"):
        start_run(accelerator, TrainConfig(log_with="tensorboard,trackio"))
