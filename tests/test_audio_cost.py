"""The cost of decoding is bounded by the file's header, not its size: odd and extreme sample rates, a FLAC whose
header promises 59 minutes at 384 kHz, a stream without a duration. Each gets an answer or a clear refusal within
10 s and < 512 MiB of extra peak memory (VmHWM after a /proc/self/clear_refs reset, in a fresh process)."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.helpers.audio import tone, write
from tests.helpers.cli import REPO
from trainer.audio import decode
from trainer.errors import UserError

MEASURE = r"""
import json, re, sys, time
from trainer.audio.decode import load_waveform
from trainer.errors import UserError

def kib(key):
    return int(re.search(rf"{key}:\s+(\d+)", open("/proc/self/status").read()).group(1))

load_waveform(sys.argv[1], 16000)  # FFmpeg's libraries and torch's kernels load once, outside the measurement
out = {}
for path in sys.argv[2:]:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    base, start = kib("VmRSS"), time.perf_counter()
    try:
        wave, info = load_waveform(path, 16000)
        answer = f"ok {wave.numel()} samples; " + "; ".join(info.notes)
    except UserError as e:
        answer = f"refused: {e}"
    out[path.rsplit("/", 1)[-1]] = {"answer": answer, "s": time.perf_counter() - start,
                                    "extra_mib": (kib("VmHWM") - base) / 1024}
print(json.dumps(out))
"""


def flac_claiming(path, seconds: float, rate: int) -> None:
    """A 1-second FLAC of DC whose STREAMINFO says `seconds` long: what a header-trusting decoder would allocate."""
    buf = io.BytesIO()
    sf.write(buf, np.full(rate, 0.5, np.float32), rate, format="FLAC", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    assert data[:4] == b"fLaC"  # STREAMINFO's 36-bit total-samples field ends the 8 bytes at offset 18
    packed = struct.unpack(">Q", data[18:26])[0] & ~((1 << 36) - 1) | int(seconds * rate)
    data[18:26] = struct.pack(">Q", packed)
    path.write_bytes(bytes(data))


@pytest.mark.timing
def test_extreme_rates_and_a_59_minute_384k_flac_cost_little(tmp_path):
    files = {f"{rate}.wav": rate for rate in (1000, 8000, 44101, 96000, 384000)}
    for name, rate in files.items():
        write(tmp_path / name, tone(1.0, rate), rate, "PCM_16")
    write(tmp_path / "tiny_44101.wav", tone(0.018, 44101), 44101, "PCM_16")  # 1.6 KB
    flac_claiming(tmp_path / "dc_59min_384k.flac", 59 * 60, 384000)
    write(tmp_path / "500k.wav", tone(0.1, 500000), 500000, "PCM_16")
    names = [*files, "tiny_44101.wav", "dc_59min_384k.flac", "500k.wav"]
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "8000.wav"),
                           *(str(tmp_path / n) for n in names)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in names:
        assert got[name]["s"] < 10 and got[name]["extra_mib"] < 512, (name, got[name])
    for name in (*files, "tiny_44101.wav"):
        assert got[name]["answer"].startswith("ok"), (name, got[name])
    assert "resampled 44101 Hz → 16000 Hz" in got["44101.wav"]["answer"]
    assert got["1000.wav"]["answer"].startswith("ok 16000 samples")
    assert "the clip holds 1359 M samples (59 minutes at 384000 Hz)" in got["dc_59min_384k.flac"]["answer"]
    assert "the sample rate is 500000 Hz; rates from 1 kHz to 384 kHz are read" in got["500k.wav"]["answer"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to write a WebM")
def test_a_stream_without_duration_is_decoded_in_chunks_and_stopped_past_the_cap(tmp_path, monkeypatch):
    webm = tmp_path / "mic.webm"  # what a browser's recorder sends: Opus in WebM, no duration in the header
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=5",
                    "-c:a", "libopus", str(webm)], check=True)
    wave, info = decode.load_waveform(webm, 16000)
    assert wave.numel() == 80000 and info.format == "Opus"
    monkeypatch.setattr(decode, "MAX_SECONDS", 2.0)
    monkeypatch.setattr(decode, "CHUNK_FRAMES", 48000)  # 1 s chunks: decoding stops after the third
    with pytest.raises(UserError, match="mic.webm: the clip is longer than the limit"):
        decode.load_waveform(webm, 16000)


@pytest.mark.parametrize("orig", [1000, 8000, 11025, 22050, 44100, 48000, 96000, 384000])
def test_streaming_resampler_equals_torchaudio_resample_of_the_whole_wave(orig):
    import torchaudio

    x = torch.from_numpy(np.random.default_rng(orig).standard_normal(3 * orig + 123).astype(np.float32))
    resampler = decode.Resampler(orig, 16000)
    out = torch.cat([*(resampler.feed(x[i: i + 70001]) for i in range(0, len(x), 70001)), resampler.finish()])
    ref = torchaudio.functional.resample(x, orig, 16000)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("orig", "length", "chunk"), [(44100, 5000, 1), (48000, 70, 7), (8000, 12345, 333),
                                                    (22050, 3, 1), (44100, 0, 10)])
def test_streaming_resampler_is_exact_for_any_chunking_and_short_waves(orig, length, chunk):
    """Chunks shorter than the kernel's context, a wave shorter than one frame, an empty wave: the same samples
    as torchaudio.functional.resample of the whole wave."""
    import torchaudio

    x = torch.from_numpy(np.random.default_rng(length).standard_normal(length).astype(np.float32))
    resampler = decode.Resampler(orig, 16000)
    out = torch.cat([*(resampler.feed(x[i: i + chunk]) for i in range(0, length, chunk)), resampler.finish()])
    ref = torchaudio.functional.resample(x, orig, 16000) if length else torch.zeros(0)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_a_rate_pair_past_the_kernel_budget_goes_through_soxr():
    assert decode._plan(44100, 16000) is not None and decode._plan(44101, 16000) is None
    x = torch.from_numpy(tone(1.0, 44101))
    out = decode.resample(x, 44101, 16000)
    assert out.numel() == 16000
    ref = decode.resample(torch.from_numpy(tone(1.0, 44100)), 44100, 16000)  # the same tone, one Hz apart
    assert float((out[400:-400] - ref[400:-400]).abs().mean()) < 0.05
