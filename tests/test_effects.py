"""Effects the trainer claims, each shown to happen: temperature scaling lowers validation NLL (and ECE of
over-confident logits), SpecAugment masks the training batch as configured, a `<class>/<clip>` audiofolder trains
and serves, the LR range test gives one curve across 2 processes, and the manifest pins code and data."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.cli import REPO, SMOKE, run_cli
from trainer.config import AudioConfig, DataConfig
from trainer.evaluation.decision import fit_decision, score_split
from trainer.evaluation.probabilities import fit_temperature, softmax

# --- temperature scaling ---------------------------------------------------------------------------------------


def _logits(scale: float, n: int = 2000, c: int = 10, seed: int = 0) -> dict:
    """Validation predictions of a ~55%-accurate model whose logits are `scale` times the calibrated ones
    (scale > 1: over-confident)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    z = rng.normal(0, 1, (n, c))
    z[np.arange(n), labels] += 1.5
    return {"logits": z * scale, "labels": labels, "index": np.arange(n)}


@pytest.mark.parametrize("scale", [4.0, 0.3])
def test_the_fitted_temperature_lowers_nll_and_ece_of_miscalibrated_logits(scale):
    val = _logits(scale)
    decision = fit_decision(val, multi_label=False)
    assert (decision["temperature"] > 1.5) if scale > 1 else (decision["temperature"] < 0.5)
    m = score_split(val, 10, decision)["metrics"]  # what eval/metrics.json records per split
    assert m["nll_calibrated"] < m["nll"] - 0.05, m
    assert m["ece_calibrated"] < m["ece"] / 3, m


def test_a_failed_fit_never_raises_the_nll(monkeypatch):
    """An optimizer that lands on a bad temperature (T = 50 on well-calibrated logits): the fit keeps T = 1."""

    class Lost(torch.optim.LBFGS):
        def step(self, closure):
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(np.log(50.0))

    val = _logits(1.0)
    monkeypatch.setattr(torch.optim, "LBFGS", Lost)
    t = fit_temperature(val["logits"], val["labels"])
    nll = [float(-np.log(softmax(val["logits"], v)[np.arange(2000), val["labels"]]).mean()) for v in (t, 1.0)]
    assert nll[0] <= nll[1]


def test_the_run_records_nll_and_ece_before_and_after_with_lower_validation_nll(smoke_run):
    metrics = json.loads((smoke_run / "eval" / "metrics.json").read_text())
    config = json.loads((smoke_run / "config.json").read_text())
    for split in ("val", "test"):
        assert {"nll", "nll_calibrated", "ece", "ece_calibrated"} <= set(metrics[split])
        assert metrics[split]["temperature"] == config["temperature"]  # the one the app divides by
    assert metrics["val"]["nll_calibrated"] <= metrics["val"]["nll"] + 1e-9  # fitted there: never worse


# --- SpecAugment ---------------------------------------------------------------------------------------------

QUIET = {"gain_db": 0.0, "shift": 0.0, "noise_prob": 0.0, "spec_mean": -40.0, "spec_std": 15.0}


def _runs(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D mask."""
    padded = torch.cat([torch.zeros(1), mask.float(), torch.zeros(1)])
    edges = torch.nonzero(padded.diff()).flatten()
    return (edges[1::2] - edges[::2]).tolist()


def _train_batch(cfg: AudioConfig, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(train input, eval input) of the same n tones through trainer.data.waves.AudioPreprocess."""
    from tests.helpers.audio import tone
    from trainer.data.waves import AudioPreprocess

    waves = torch.from_numpy(np.stack([tone(cfg.clip_seconds, cfg.sample_rate, s) for s in range(n)]))
    lengths = torch.full((n,), waves.shape[1])  # whole clips: the train crop keeps them as they are
    torch.manual_seed(0)
    return (AudioPreprocess(cfg, train=True, channels_last=False)((waves, lengths)),
            AudioPreprocess(cfg, train=False, channels_last=False)((waves, lengths)))


def test_specaugment_masks_bands_and_frames_of_the_configured_widths_and_counts():
    cfg = AudioConfig(freq_mask=10, time_mask=20, num_masks=2, **QUIET)
    train, clean = _train_batch(cfg)
    changed = train != clean
    assert (train[changed] == 0).all()  # masked cells hold 0, the normalised mean
    widths = {"freq": [], "time": []}
    for b in range(len(train)):
        cells = changed[b, 0]
        bands, frames = cells.all(1), cells.all(0)  # a frequency mask spans every frame, a time mask every band
        assert torch.equal(cells, bands[:, None] | frames[None, :])  # nothing else changed
        for kind, mask in (("freq", bands), ("time", frames)):
            runs = _runs(mask)
            assert len(runs) <= cfg.num_masks  # masks of a kind may overlap into one run, never more
            widths[kind] += runs
    assert sum(changed[:, 0].all(2).any(1)) > 48 and sum(changed[:, 0].all(1).any(1)) > 48  # most clips masked
    assert max(widths["freq"]) <= 2 * cfg.freq_mask and max(widths["time"]) <= 2 * cfg.time_mask
    assert np.mean(widths["freq"]) > 3 and np.mean(widths["time"]) > 6  # widths drawn up to the maximum


def test_specaugment_is_on_by_default_and_off_leaves_the_training_batch_unchanged():
    default, clean = _train_batch(AudioConfig(**QUIET), n=16)
    assert (default != clean).any()
    train, clean = _train_batch(AudioConfig(freq_mask=0, time_mask=0, **QUIET), n=16)
    assert torch.equal(train, clean)
    only_time, clean = _train_batch(AudioConfig(freq_mask=0, time_mask=12, **QUIET), n=16)
    changed = only_time != clean
    assert changed.any() and not changed.all(3).any()  # time masks only: no band masked across every frame


# --- a single-label audiofolder, end to end ------------------------------------------------------------------

TONES = {"high": 2400.0, "low": 300.0, "mid": 900.0}


def _tone_folder(root: Path, per_class: int = 8, sr: int = 8000) -> Path:
    """root/<class>/<i>.wav: half-second tones of one pitch per class, with a little noise."""
    import soundfile as sf

    rng, t = np.random.default_rng(0), np.arange(sr // 2) / sr
    for name, freq in TONES.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            wave = 0.5 * np.sin(2 * np.pi * freq * (1 + rng.uniform(-0.02, 0.02)) * t) + rng.normal(0, 0.01, len(t))
            sf.write(root / name / f"{i}.wav", wave.astype(np.float32), sr)
    return root


@pytest.mark.slow
def test_a_class_per_folder_audio_dataset_trains_and_the_checkpoint_serves(tmp_path):
    import timm

    from space.audio import classify_wave
    from space.classifier import load_classifier
    from trainer.audio.decode import load_waveform

    data = _tone_folder(tmp_path / "tones")
    out = tmp_path / "run"
    run_cli("trainer/train.py", "--dataset", str(data), "--model", "test_resnet", "--no-pretrained", "--max-steps",
            "3", "--batch-size", "8", "--clip-seconds", "0.5", "--n-mels", "32", "--output-dir", str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["modality"] == "audio" and config["task"] == "single_label"
    assert config["label_names"] == sorted(TONES) and config["temperature"] > 0
    metrics = json.loads((out / "eval" / "metrics.json").read_text())["val"]
    assert metrics["num_samples"] >= 3 and np.isfinite(metrics["loss"])
    assert timm.create_model(f"local-dir:{out}", pretrained=True).num_classes == 3  # plain timm loads it
    clf = load_classifier(str(out), "audio")  # the app's loader: the checkpoint contract only
    wave, _ = load_waveform(data / "mid" / "0.wav", config["audio"]["sample_rate"])
    mean, windows, image = classify_wave(clf, wave)
    probs = clf.probs_of(mean.numpy()[None])[0]
    assert mean.shape == (3,) and len(windows) == 1 and image.size[0] > 0
    assert probs.sum() == pytest.approx(1.0) and (probs > 0).all()


# --- the LR range test across 2 processes --------------------------------------------------------------------


@pytest.mark.slow
def test_the_lr_finder_writes_one_curve_averaged_over_two_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "find"
    flags = [a for a in SMOKE if a not in ("--tta", "flip")]
    run_cli("-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
            "tests/helpers/lr_find_ranks.py", *flags, "--lr-find", "--lr-find-iters", "12", "--output-dir", str(out))
    ranks = [json.loads((out / f"lr_find_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["num_processes"] for r in ranks] == [2, 2]  # the trap: --cpu silently runs one process
    assert sorted(p.name for p in (out / "lr_find").iterdir()) == ["lr_find.json", "lr_find.png"]
    written = json.loads((out / "lr_find" / "lr_find.json").read_text())
    assert ranks[0]["losses"] == ranks[1]["losses"] == written["losses"] and len(written["losses"]) >= 5
    local = np.array([r["local"] for r in ranks])  # each rank's own loss per step, before the all-reduce
    assert not np.allclose(local[0], local[1])  # the ranks saw different batches
    np.testing.assert_allclose(ranks[0]["reduced"], local.mean(0), rtol=1e-6)  # the curve is their mean


# --- manifest.json: code and data provenance -----------------------------------------------------------------


def test_git_dirty_flags_uncommitted_changes_to_tracked_files(tmp_path):
    from trainer.checkpoint.write import git_state

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "code.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "scratch.txt").write_text("untracked\n")
    assert git_state(tmp_path) == (head, False)  # an untracked file is not a code change
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (head, True)
    assert git_state(tmp_path.parent / "no-such-dir") == (None, None)
    (tmp_path / "venv").mkdir()  # a package installed into a venv inside someone's repo: not our checkout
    assert git_state(tmp_path / "venv") == (None, None)


def test_the_manifest_records_git_state_and_the_data_release(smoke_run):
    from trainer.checkpoint.write import git_state

    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert (manifest["git_sha"], manifest["git_dirty"]) == git_state(REPO) or manifest["git_sha"] is None
    assert isinstance(manifest["git_dirty"], bool) or manifest["git_sha"] is None
    dataset = manifest["dataset"]
    assert dataset["version"].startswith("v1 (dataset-fashion-mnist ")  # the embedded data's own release
    assert set(dataset["fingerprints"]) == {"train", "val", "test"}


def test_fingerprints_are_stable_for_the_same_data_and_change_with_it(tmp_path):
    from tests.helpers.data import make_imagefolder
    from trainer.data.bundle import build_data

    root = make_imagefolder(tmp_path / "imgs", {"a": 12, "b": 12})
    cfg = DataConfig(dataset=str(root), val_pct=0.25)
    first, again = build_data(cfg, seed=0).source, build_data(cfg, seed=0).source
    assert first["fingerprints"] == again["fingerprints"] and first["version"] is None  # a folder: no release
    make_imagefolder(tmp_path / "imgs", {"a": 12, "b": 13}, seed=1)  # rewritten, with one more image
    changed = build_data(cfg, seed=0).source["fingerprints"]
    assert changed["train"] != first["fingerprints"]["train"]


def test_a_hub_dataset_records_the_commit_its_revision_resolved_to(tmp_path, monkeypatch):
    import huggingface_hub

    from tests.fakes.hub.server import DEFAULT_TOKEN, LocalHub
    from trainer.data.sources import hub_dataset_sha

    hub = LocalHub(tmp_path / "hub")
    hub.start()
    try:
        api = huggingface_hub.HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)
        api.create_repo("testuser/tones", repo_type="dataset")
        api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id="testuser/tones",
                        repo_type="dataset")
        sha = hub.commits("testuser/tones", "dataset")[0]["id"]
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", DEFAULT_TOKEN)
        assert hub_dataset_sha("testuser/tones", None) == sha
        assert hub_dataset_sha("testuser/tones", "main") == sha
    finally:
        hub.stop()
    assert hub_dataset_sha("testuser/tones", None) is None  # unreachable: nothing made up
    cached = type("Cached", (), {"cache_files": [{"filename": f"/c/testuser___tones/default/0.0.0/{sha}/t.arrow"}]})
    assert hub_dataset_sha("testuser/tones", None, {"train": cached()}) == sha  # offline: the commit datasets loaded
