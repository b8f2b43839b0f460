"""The audio front end (against librosa), the decoder's clear errors, sliding windows, spoken-digits, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers.audio import REFUSED, tone, write, write_refused
from tests.helpers.cli import AUDIO_VOICES, REPO
from trainer.audio.decode import check_audio, load_waveform, resample
from trainer.audio.frontend import LogMel, mel_filterbank, sliding_window_logits
from trainer.config import AudioConfig
from trainer.errors import UserError


@pytest.mark.parametrize("channels, c", [("1", 1), ("replicate", 3), ("multires", 3)])
def test_front_end_shape_and_dtype(channels, c):
    cfg = AudioConfig(spec_channels=channels, spec_mean=-50.0, spec_std=20.0)
    waves = torch.from_numpy(np.stack([tone(0.7, 16000, s) for s in range(3)]))
    front = LogMel(cfg)
    x = front(front.clips(waves, torch.tensor([11200, 8000, 5000])))
    assert x.shape == (3, c, 64, 101) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert cfg.in_chans == c and cfg.frames == 101


@pytest.mark.parametrize("scale", ["slaney", "htk"])
@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [(16000, 512, 64, 0.0, 8000.0),
                                                            (22050, 1024, 128, 50.0, 7000.0),
                                                            (8000, 256, 40, 20.0, 4000.0)])
def test_mel_filterbank_matches_librosa(scale, sr, n_fft, n_mels, fmin, fmax):
    import librosa

    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, scale).numpy()
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=scale == "htk")
    # float32 both ways: filters peak near 1e-2, and a few tail bins differ by ~1e-7 (float rounding)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=5e-7)


@pytest.mark.parametrize("scale", ["slaney", "htk"])
def test_log_mel_matches_librosa_melspectrogram_and_power_to_db(scale):
    import librosa

    cfg = AudioConfig(mel_scale=scale, f_min=30.0, f_max=7600.0)
    y = tone(1.0, 16000) + 0.05 * np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    power = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, n_mels=64, fmin=30.0,
                                           fmax=7600.0, htk=scale == "htk", center=True, pad_mode="constant")
    ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0)
    ours = LogMel(cfg).spectrogram(torch.from_numpy(y)[None])[0, 0].numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3)


@pytest.mark.parametrize("orig", [8000, 22050, 44100, 48000])
def test_resample_keeps_a_tone_and_the_length(orig):
    t = np.arange(orig) / orig
    out = resample(torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32)), orig, 16000).numpy()
    assert len(out) == 16000
    expected = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 2e-3


def test_stereo_48k_int16_and_mono_16k_float_give_the_same_features(tmp_path):
    x16, x48 = tone(1.0, 16000), tone(1.0, 48000)
    a = write(tmp_path / "stereo.wav", np.stack([x48, x48], 1), 48000, "PCM_16")
    b = write(tmp_path / "mono.wav", x16, 16000, "FLOAT")
    front = LogMel(AudioConfig(spec_mean=-50.0, spec_std=20.0))
    (wa, ia), (wb, ib) = load_waveform(a, 16000), load_waveform(b, 16000)
    assert ia.channels == 2 and ia.sample_rate == 48000 and ib.channels == 1 and wa.shape == wb.shape
    fa, fb = front.eval_input(wa), front.eval_input(wb)
    diff_db = (fa - fb).abs() * 20.0  # back to dB
    assert float(diff_db.mean()) < 0.5 and float(diff_db.quantile(0.99)) < 3.0


def test_trainer_path_and_app_path_give_the_same_tensor(tmp_path):
    import datasets

    from space.audio import front_for
    from trainer.data.waves import AudioPreprocess, PadCollate, WaveDataset

    path = write(tmp_path / "clip.wav", tone(0.8, 22050), 22050, "PCM_16")
    features = datasets.Features({"audio": datasets.Audio(), "label": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict({"audio": [str(path)], "label": [0]}, features=features)
    cfg = AudioConfig(spec_mean=-40.0, spec_std=15.0)
    trainer_x = AudioPreprocess(cfg, train=False, channels_last=False)(
        PadCollate(cfg.clip_samples, train=False)([WaveDataset(ds, "audio", "label", cfg.sample_rate)[0]])[0])
    clf = type("Clf", (), {"ref": str(tmp_path), "config": {"audio": cfg.to_block()}})()
    seen = []
    wave, _ = load_waveform(path, cfg.sample_rate)
    sliding_window_logits(wave, front_for(clf), lambda x: seen.append(x) or torch.zeros(len(x), 10))
    assert len(seen) == 1 and torch.equal(seen[0], trainer_x)


def test_bad_audio_gets_a_clear_user_error(tmp_path):
    cases = write_refused(tmp_path)
    assert len(cases) >= 10
    for path, message in cases.items():
        with pytest.raises(UserError) as err:
            load_waveform(path, 16000, name=path.name)
        assert message in str(err.value), (path.name, str(err.value))
        with pytest.raises(UserError) as err:  # the check-only path (flywheel uploads, local datasets) agrees
            check_audio(path, name=path.name)
        assert message in str(err.value), (path.name, str(err.value))
    wave, _ = load_waveform(tmp_path / "silent.wav", 16000, allow_silence=True)  # training data may be silent
    assert not wave.any()
    info = check_audio(write(tmp_path / "ok48.wav", tone(0.5, 48000), 48000, "PCM_24"))
    assert (info.sample_rate, info.duration_s) == (48000, 0.5) and info.notes == ["decoded WAV 24-bit PCM"]
    with pytest.raises(UserError, match="does not exist"):
        load_waveform(tmp_path / "missing.wav", 16000)
    assert "one_sample.wav" in REFUSED


def test_thirty_minute_clip_runs_through_the_sliding_window_in_bounded_memory(tmp_path):
    script = f"""
import json, resource, torch
from tests.helpers.audio import long_wav
from trainer.audio.frontend import LogMel, sliding_window_logits
from trainer.audio.decode import load_waveform
from trainer.config import AudioConfig
path = long_wav(__import__("pathlib").Path({str(tmp_path)!r}) / "long.wav", 30, sr=16000, subtype="PCM_16")
model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                            torch.nn.Linear(4, 10)).eval()
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (peak so far)
base = rss()
wave, info = load_waveform(path, 16000)
loaded = rss()
sizes = []
mean, windows = sliding_window_logits(wave, LogMel(AudioConfig(spec_mean=-50.0, spec_std=20.0)),
                                      lambda x: sizes.append(len(x)) or model(x))
print(json.dumps({{"load_mib": loaded - base, "window_mib": rss() - loaded, "windows": len(windows),
                  "max_batch": max(sizes), "wave_mib": wave.numel() * 4 / 2**20, "shape": list(mean.shape)}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["windows"] == 3599 and r["max_batch"] <= 32 and r["shape"] == [10]  # 1 s windows every 0.5 s
    # decoding holds the mono wave (~110 MiB) once; all 3,599 windows at once would need > 1 GiB more
    assert r["load_mib"] < 2 * r["wave_mib"] + 50 and r["window_mib"] < 150, r


def test_spoken_digits_holds_out_voices_and_whole_accents(audio_env, monkeypatch):
    for key, value in audio_env.items():
        monkeypatch.setenv(key, value)
    from trainer.data.builtin import spoken_digits as sd

    dd = sd.load_spoken_digits()
    rows = {name: list(zip(ds["accent"], ds["voice"], ds["group"], ds["speed"], ds["pitch"], strict=True))
            for name, ds in dd.items()}
    accents = {name: {r[0] for r in split} for name, split in rows.items()}
    assert accents == {"train": {"en-us", "en-gb"}, "val": {"en-us", "en-gb", "en-029"},
                       "test": {"en-us", "en-gb", "en-gb-x-rp"}}  # held-out accents never in training
    seen = {name: {r[1] for r in split if r[0] in sd.TRAIN_ACCENTS} for name, split in rows.items()}
    assert not seen["train"] & (seen["val"] | seen["test"]) and not seen["val"] & seen["test"]
    assert {r[2] for r in rows["test"]} == {sd.SEEN_GROUP, "en-gb-x-rp"}
    assert all(r[2] == sd.SEEN_GROUP for r in rows["train"])
    # 3 train voices × 2 accents × 10 words × 2 takes; held out: once each (2 accents × 1 voice, or 5 voices)
    assert {name: len(ds) for name, ds in dd.items()} == {"train": 120, "val": 70, "test": 70}
    assert all(120 <= r[3] <= 220 and 20 <= r[4] <= 80 for split in rows.values() for r in split)
    assert len({(r[3], r[4]) for r in rows["train"]}) > 100  # every clip draws its own speed and pitch
    assert dd["train"].features["label"].names == sd.DIGITS
    voices = AUDIO_VOICES.split(",")
    assert sd.split_by_voice(voices) == sd.split_by_voice(list(reversed(voices)))  # order-independent, fixed
    assert sd.draw("en-us", "f3", 3, 0) == sd.draw("en-us", "f3", 3, 0) != sd.draw("en-us", "f3", 3, 1)
    wave, info = load_waveform(dd["test"].cast_column("audio", __import__("datasets").Audio(decode=False))[0]["audio"],
                               16000)
    assert info.sample_rate == 22050 and info.channels == 1 and 0.3 < info.duration_s < 2.0


def test_spoken_digits_refuses_unknown_accents(monkeypatch):
    from trainer.data.builtin import spoken_digits as sd

    monkeypatch.setenv(sd.ACCENTS_ENV, "en-us,en-mars")
    with pytest.raises(UserError, match="en-mars"):
        sd.chosen_accents()


def test_cli_smoke_run_writes_an_audio_checkpoint(audio_run):
    import timm

    from trainer.checkpoint.read import check_checkpoint

    cfg = json.loads((audio_run / "config.json").read_text())
    assert cfg["modality"] == "audio" and cfg["label_names"] == ["zero", "one", "two", "three", "four", "five",
                                                                 "six", "seven", "eight", "nine"]
    block = AudioConfig.from_block(cfg["audio"])
    assert block.to_block() == cfg["audio"] and block.spec_mean is not None and block.spec_std > 0
    assert tuple(cfg["pretrained_cfg"]["input_size"]) == (1, block.n_mels, block.frames)
    assert cfg["resampler"].startswith("torchaudio sinc_interp_hann")  # how waves reached the model's rate
    check_checkpoint(audio_run, "audio run")
    model = timm.create_model(f"local-dir:{audio_run}", pretrained=True).eval()
    assert model(torch.zeros(2, 1, block.n_mels, block.frames)).shape == (2, 10)
    samples = json.loads((audio_run / "eval/samples.json").read_text())
    from PIL import Image

    thumb = Image.open(audio_run / "eval" / samples["top_loss"][0]["file"])
    assert thumb.mode == "RGB" and thumb.height < thumb.width * 2  # a spectrogram, not a crash
    assert json.loads((audio_run / "train_config.json").read_text())["audio"]["n_mels"] == 64
    assert "audio-classification" in (audio_run / "README.md").read_text()


def test_group_column_reports_each_held_out_group(audio_run):
    """--group-column group: eval/groups.json agrees with the per-row predictions, and the card shows it."""
    import pyarrow.parquet as pq

    from trainer.data.builtin.spoken_digits import SEEN_GROUP

    groups = json.loads((audio_run / "eval" / "groups.json").read_text())
    assert groups["column"] == "group" and set(groups["test"]) == {SEEN_GROUP, "en-gb-x-rp"}
    assert set(groups["val"]) == {SEEN_GROUP, "en-029"}
    preds = pq.read_table(audio_run / "eval" / "predictions.parquet").to_pandas()
    test = preds[preds["split"] == "test"]
    assert sum(g["num_samples"] for g in groups["test"].values()) == len(test)
    card = (audio_run / "README.md").read_text()
    assert "Per `group` group:" in card and "| en-gb-x-rp |" in card
    overall = json.loads((audio_run / "eval" / "metrics.json").read_text())["test"]["accuracy"]
    weighted = sum(g["accuracy"] * g["num_samples"] for g in groups["test"].values()) / len(test)
    assert abs(weighted - overall) < 1e-9 and abs(weighted - float((test["label"] == test["pred"]).mean())) < 1e-9


@pytest.mark.slow
def test_audio_folds_balance_and_mixup_run_unchanged(tmp_path, audio_env):
    from tests.helpers.cli import AUDIO_SMOKE, run_cli

    out = tmp_path / "folds"
    run_cli("trainer/train.py", *AUDIO_SMOKE, "--max-steps", "2", "--folds", "2", "--balance", "sampler",
            "--mixup", "0.2", "--spec-channels", "multires", "--output-dir", str(out), env=audio_env)
    summary = json.loads((out / "folds" / "summary.json").read_text())
    assert summary["folds"] == 2 and (out / "folds" / "1" / "config.json").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["audio"]["spec_channels"] == "multires" and cfg["pretrained_cfg"]["input_size"][0] == 3


@pytest.mark.slow
def test_validate_cli_evaluates_an_audio_checkpoint_with_its_own_front_end(audio_run, audio_env, tmp_path):
    from tests.helpers.cli import run_cli

    proc = run_cli("trainer/validate.py", "--checkpoint", str(audio_run), "--dataset", "spoken-digits", "--split",
                   "test", "--group-column", "accent", "--output-dir", str(tmp_path), env=audio_env)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the 1 held-out voice in 2 training accents (20 clips) and the held-out accent (5 voices, 50 clips)
    assert metrics["num_samples"] == 70 and "test: accuracy" in proc.stdout
    groups = json.loads((tmp_path / "groups.json").read_text())["test"]
    assert {k: g["num_samples"] for k, g in groups.items()} == {"en-us": 10, "en-gb": 10, "en-gb-x-rp": 50}
    assert "accent=en-gb-x-rp: accuracy" in proc.stdout


def _pure(freq: float, n: int = 19200, sr: int = 16000) -> torch.Tensor:
    """A sine of freq Hz, n samples."""
    return torch.sin(2 * np.pi * freq * torch.arange(n) / sr)


QUIET = {"gain_db": 0.0, "shift": 0.0, "noise_prob": 0.0}  # every other augmentation off


def test_speed_perturbation_moves_the_pitch_within_the_range():
    from trainer.data.waves import augment_waves

    x = _pure(1000.0).repeat(64, 1)
    peaks = torch.fft.rfft(augment_waves(x, AudioConfig(speed=0.2, **QUIET)) * torch.hann_window(19200))
    freqs = peaks.abs().argmax(1).float() * 16000 / 19200
    assert freqs.min() >= 790 and freqs.max() <= 1210 and len(freqs.unique()) >= 5
    assert torch.equal(augment_waves(x, AudioConfig(speed=0.0, **QUIET)), x)


def test_reverb_adds_a_decaying_tail_and_keeps_the_level():
    from trainer.data.waves import augment_waves

    click = torch.zeros(8, 19200)
    click[:, 100] = 1.0
    wet = augment_waves(click, AudioConfig(reverb_prob=1.0, reverb_rt60=[0.3, 0.3], **QUIET))
    early, late = wet[:, 900:2500].square().sum(1), wet[:, 2500:4900].square().sum(1)
    assert (early > 0.01).all() and (late < early).all() and (late > 0).all()  # a tail that decays
    torch.testing.assert_close(wet.square().mean(1), click.square().mean(1))
    assert torch.equal(augment_waves(click, AudioConfig(reverb_prob=0.0, **QUIET)), click)


def test_noise_lands_at_the_drawn_snr():
    from trainer.data.waves import augment_waves

    clean = _pure(440.0).repeat(8, 1)
    noisy = augment_waves(clean, AudioConfig(gain_db=0.0, shift=0.0, noise_prob=1.0, noise_snr=[20.0, 20.0]))
    snr = 10 * torch.log10(clean.square().sum(1) / (noisy - clean).square().sum(1))
    torch.testing.assert_close(snr, torch.full((8,), 20.0), atol=1e-3, rtol=0)


def test_audio_augmentation_flags_reach_the_config():
    from trainer.flags import parse_config

    cfg = parse_config(["--speed", "0.1", "--reverb-prob", "0.5", "--reverb-rt60", "0.2", "0.4"]).audio
    assert (cfg.speed, cfg.reverb_prob, cfg.reverb_rt60) == (0.1, 0.5, [0.2, 0.4])
    with pytest.raises(UserError, match="--reverb-rt60"):
        AudioConfig(reverb_rt60=[0.5, 0.2])
