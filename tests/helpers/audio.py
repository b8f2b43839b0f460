"""Audio files for the front-end and app tests: one test signal in many encodings, and files that must be refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A speech-band test signal (a few harmonics under 4 kHz with a slow envelope), float32 in [-0.8, 0.8]."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(150, 3800, 5)
    x = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, rng.uniform(0, 6, 5), strict=True))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 1.5 * t)
    return (0.8 * x * envelope / 5).astype(np.float32)


def write(path: Path, data: np.ndarray, sr: int, subtype: str | None = None, fmt: str | None = None) -> Path:
    """soundfile.write, returning the path."""
    sf.write(str(path), data, sr, subtype=subtype, format=fmt)
    return path


def long_wav(path: Path, minutes: float, sr: int = 8000, subtype: str = "PCM_U8") -> Path:
    """A long clip written block by block (a 30-minute signal never sits in memory as float64)."""
    block = tone(10.0, sr)
    with sf.SoundFile(str(path), "w", sr, 1, subtype=subtype, format="WAV") as f:
        for _ in range(int(minutes * 6)):
            f.write(block)
    return path


# file name → expected words of the error message; the app must refuse each and keep serving.
REFUSED = {
    "empty.wav": "empty.wav: the file is empty (0 bytes)",
    "text.wav": "text.wav: not an audio file that can be read",
    "noise.flac": "noise.flac: not an audio file that can be read",
    "picture.ogg": "picture.ogg: not an audio file that can be read",
    "truncated.wav": "truncated.wav: not an audio file that can be read",
    "one_sample.wav": "one_sample.wav: the clip is 1 sample(s) long",
    "no_samples.wav": "no_samples.wav: the clip has no samples",
    "silent.wav": "silent.wav: the clip is silent (every sample is 0)",
    "nan.wav": "nan.wav: 100 of 16000 samples are NaN or infinite",
    "inf.wav": "inf.wav: 1 of 16000 samples are NaN or infinite",
    "hour.wav": "hour.wav: the clip is 61 minutes long; the limit is 60 minutes",
}


def write_refused(root: Path) -> dict[Path, str]:
    """Write every REFUSED case under root; path → expected message."""
    root.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    sf.write(good, tone(1.0, 16000), 16000, format="WAV", subtype="PCM_16")
    nan, inf = tone(1.0, 16000), tone(1.0, 16000)
    nan[:100], inf[5] = np.nan, np.inf
    (root / "empty.wav").write_bytes(b"")
    (root / "text.wav").write_text("this is a text file renamed to .wav\n" * 20)
    (root / "noise.flac").write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    (root / "picture.ogg").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (root / "truncated.wav").write_bytes(good.getvalue()[:30])
    write(root / "one_sample.wav", np.array([0.5], dtype=np.float32), 16000, "PCM_16")
    write(root / "no_samples.wav", np.zeros(0, dtype=np.float32), 16000, "PCM_16")
    write(root / "silent.wav", np.zeros(16000, dtype=np.float32), 16000, "PCM_16")
    write(root / "nan.wav", nan, 16000, "FLOAT")
    write(root / "inf.wav", inf, 16000, "FLOAT")
    long_wav(root / "hour.wav", 61, sr=1000)
    return {root / name: REFUSED[name] for name in REFUSED}


# file name → a note the app's info must contain; the app must classify each.
CONVERTED = {
    "mic_int16_48k.wav": "resampled 48000 Hz → 16000 Hz",
    "u8_8k.wav": "decoded WAV 8-bit unsigned PCM",
    "pcm24_stereo_48k.wav": "stereo audio (2 channels) averaged to mono",
    "float_44k.wav": "decoded WAV 32-bit float",
    "surround_5_1.wav": "5.1 audio (6 channels) averaged to mono",
    "clip.mp3": "decoded MP3",
    "clip.ogg": "decoded OGG",
    "clip.flac": "decoded FLAC 16-bit PCM",
    "loud_float.wav": "float samples beyond ±1",
}


def write_converted(root: Path) -> dict[Path, str]:
    """Write every CONVERTED case under root; path → expected note."""
    root.mkdir(parents=True, exist_ok=True)
    x48, x16 = tone(1.0, 48000), tone(1.0, 16000)
    write(root / "mic_int16_48k.wav", x48, 48000, "PCM_16")
    write(root / "u8_8k.wav", tone(1.0, 8000), 8000, "PCM_U8")
    write(root / "pcm24_stereo_48k.wav", np.stack([x48, 0.5 * x48], 1), 48000, "PCM_24")
    write(root / "float_44k.wav", tone(1.0, 44100), 44100, "FLOAT")
    write(root / "surround_5_1.wav", np.stack([x48] * 6, 1) * 0.5, 48000, "PCM_16")
    write(root / "clip.mp3", x16, 16000, "MPEG_LAYER_III", "MP3")
    write(root / "clip.ogg", x16, 16000, "VORBIS", "OGG")
    write(root / "clip.flac", x16, 16000, "PCM_16", "FLAC")
    write(root / "loud_float.wav", 2 * x16, 16000, "FLOAT")
    return {root / name: CONVERTED[name] for name in CONVERTED}
