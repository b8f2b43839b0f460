"""Decode any audio input to one mono float32 wave at the front end's rate, with a clear error when it is unusable.

The same loader reads training rows (a datasets Audio column, read undecoded) and the app's uploads, so both
sides see the same samples. libsndfile (soundfile) reads WAV of every sample format, FLAC, OGG and MP3 block by
block, so a 30-minute file is downmixed without holding all its channels at once; FFmpeg (torchcodec, what
`datasets` itself decodes with) is the fallback for the rest (AAC/M4A, WebM/Opus, …). Resampling to the model's
rate is part of decoding: a band-limited windowed sinc, torchaudio's `functional.resample` algorithm re-implemented
(tests/test_audio.py checks it against librosa).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer.errors import UserError

MIN_SECONDS = 0.01  # shorter than one 10 ms STFT hop holds nothing to classify
MAX_SECONDS = 3600.0  # an hour: longer uploads are refused before decoding (memory), not cut silently
BLOCK = 1 << 20  # frames per read
FORMATS = "WAV, FLAC, OGG, MP3 or another format FFmpeg reads"
SUBTYPES = {"PCM_U8": "8-bit unsigned PCM", "PCM_S8": "8-bit PCM", "PCM_16": "16-bit PCM", "PCM_24": "24-bit PCM",
            "PCM_32": "32-bit PCM", "FLOAT": "32-bit float", "DOUBLE": "64-bit float", "VORBIS": "Vorbis",
            "OPUS": "Opus", "MPEG_LAYER_III": "layer III"}
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


@dataclass
class WaveInfo:
    """What the input was and what was done to it (shown in the app)."""

    name: str
    sample_rate: int = 0
    channels: int = 0
    format: str = ""
    duration_s: float = 0.0
    notes: list = field(default_factory=list)


def _source(source) -> tuple[object, str]:
    """(path or file-like or (array, sr), display name) from a path, bytes, or a datasets Audio dict."""
    if isinstance(source, (str, Path)):
        return Path(source), Path(source).name
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source), "audio"
    if isinstance(source, dict):
        if source.get("array") is not None:
            return (np.asarray(source["array"]), int(source["sampling_rate"])), Path(source.get("path") or "array").name
        if source.get("bytes") is not None:
            return io.BytesIO(source["bytes"]), Path(source.get("path") or "audio").name
        if source.get("path"):
            return Path(source["path"]), Path(source["path"]).name
    raise UserError(f"no audio in the input ({type(source).__name__}); give a file path or bytes.")


def _check_file(src, name: str) -> None:
    """Missing and empty files get their own message."""
    if isinstance(src, Path):
        if not src.is_file():
            raise UserError(f"{name}: the audio file does not exist (upload it again).")
        if src.stat().st_size == 0:
            raise UserError(f"{name}: the file is empty (0 bytes).")
    elif isinstance(src, io.BytesIO) and not src.getbuffer().nbytes:
        raise UserError(f"{name}: the file is empty (0 bytes).")


def _check_duration(frames: int, sr: int, name: str) -> None:
    """Refuse clips too short to hold anything and too long to decode safely, before decoding them."""
    if frames <= 0 or sr <= 0:
        raise UserError(f"{name}: the clip has no samples (0 s of audio).")
    if frames / sr < MIN_SECONDS:
        raise UserError(f"{name}: the clip is {frames} sample(s) long ({1000 * frames / sr:.2f} ms); at least "
                        f"{1000 * MIN_SECONDS:.0f} ms of audio is needed.")
    if frames / sr > MAX_SECONDS:
        raise UserError(f"{name}: the clip is {frames / sr / 60:.0f} minutes long; the limit is "
                        f"{MAX_SECONDS / 60:.0f} minutes. Trim it first.")


def _decode_soundfile(src, info: WaveInfo) -> np.ndarray:
    """libsndfile: mono float32 at the file's rate, downmixed block by block."""
    import soundfile as sf

    with sf.SoundFile(src) as f:
        info.sample_rate, info.channels = f.samplerate, f.channels
        info.format = f"{f.format} {SUBTYPES.get(f.subtype, f.subtype)}"
        _check_duration(f.frames, f.samplerate, info.name)
        out = np.empty(f.frames, dtype=np.float32)
        pos = 0
        for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True):
            out[pos: pos + len(block)] = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
            pos += len(block)
    return out[:pos]


def _decode_ffmpeg(src, info: WaveInfo) -> np.ndarray:
    """FFmpeg via torchcodec for what libsndfile cannot read: mono float32 at the stream's rate."""
    from torchcodec.decoders import AudioDecoder

    if isinstance(src, io.BytesIO):
        src = src.getvalue()
    decoder = AudioDecoder(str(src) if isinstance(src, Path) else src)
    meta = decoder.metadata
    duration = meta.duration_seconds_from_header
    if duration is not None and duration > MAX_SECONDS:
        _check_duration(int(duration * (meta.sample_rate or 1)), meta.sample_rate or 1, info.name)
    samples = decoder.get_all_samples()
    data = samples.data.float()
    info.sample_rate, info.channels = int(samples.sample_rate), int(data.shape[0])
    info.format = f"{meta.codec} (FFmpeg)"
    _check_duration(data.shape[1], info.sample_rate, info.name)
    return data.mean(0).numpy() if data.shape[0] > 1 else data[0].numpy()


def decode(source, name: str | None = None) -> tuple[np.ndarray, WaveInfo]:
    """(mono float32 samples at the file's own rate, info) or a UserError saying why the input is unusable."""
    src, default_name = _source(source)
    info = WaveInfo(name=(name or default_name)[:80])  # names are echoed in messages: keep them short
    if isinstance(src, tuple):  # an already decoded array (datasets Audio with decode=True)
        array, info.sample_rate = src
        array = np.asarray(array, dtype=np.float32)
        info.channels, info.format = (1 if array.ndim == 1 else min(array.shape)), "array"
        array = array if array.ndim == 1 else array.mean(axis=int(np.argmin(array.shape)))
        _check_duration(array.shape[-1], info.sample_rate, info.name)
        return array, info
    _check_file(src, info.name)
    try:
        wave = _decode_soundfile(src, info)
    except UserError:
        raise
    except Exception:  # libsndfile does not know the format (or the data is broken): let FFmpeg try
        if isinstance(src, io.BytesIO):
            src.seek(0)
        try:
            wave = _decode_ffmpeg(src, info)
        except UserError:
            raise
        except Exception:  # FFmpeg raises RuntimeError/ValueError for non-audio and corrupt data
            raise UserError(f"{info.name}: not an audio file that can be read (expected {FORMATS}).") from None
    return wave, info


def check_samples(wave: np.ndarray, info: WaveInfo, allow_silence: bool) -> None:
    """NaN/inf samples are refused; an all-zero clip is refused unless allow_silence (a dataset may hold some)."""
    bad = int(np.count_nonzero(~np.isfinite(wave)))
    if bad:
        raise UserError(f"{info.name}: {bad} of {wave.size} samples are NaN or infinite; the file is corrupt. "
                        "Re-export it.")
    if not allow_silence and not np.any(wave):
        raise UserError(f"{info.name}: the clip is silent (every sample is 0). Record again and check the "
                        "microphone.")
    peak = float(np.abs(wave).max())
    if peak > 1.0:
        info.notes.append(f"float samples beyond ±1 (peak {peak:.2f}) used as they are")


@functools.lru_cache(maxsize=16)  # building a kernel costs more than applying it to a 1-second clip
def _sinc_kernel(orig: int, new: int, width_zeros: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc (Hann) kernels, (new, 1, orig + 2 width), as torchaudio's sinc_interp_hann."""
    base = min(orig, new) * rolloff  # the low-pass cutoff, below the lower of the two Nyquist rates
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx) * base
    t = t.clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / orig)
    return kernel.float(), width


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int, chunk_frames: int = 4096) -> torch.Tensor:
    """Resample the last dim of (…, T) from orig_sr to new_sr (band-limited sinc), in chunks (bounded memory)."""
    if orig_sr == new_sr:
        return wave
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    kernel, width = _sinc_kernel(orig, new)
    kernel = kernel.to(wave.device)
    shape, length = wave.shape[:-1], wave.shape[-1]
    flat = wave.reshape(-1, 1, length).float()
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    n_frames = length // orig + 1  # output frames of `new` samples each; the tail is trimmed below
    out = []
    for f0 in range(0, n_frames, chunk_frames):  # a conv over a 30-minute clip at once would unfold ~1 GB
        f1 = min(n_frames, f0 + chunk_frames)
        piece = padded[..., f0 * orig: f1 * orig + 2 * width + orig]
        out.append(torch.nn.functional.conv1d(piece, kernel, stride=orig)[..., : f1 - f0].transpose(1, 2))
    target = math.ceil(new * length / orig)
    return torch.cat(out, 1).reshape(flat.shape[0], -1)[:, :target].reshape(*shape, target)


def load_waveform(source, sample_rate: int, name: str | None = None,
                  allow_silence: bool = False) -> tuple["torch.Tensor", WaveInfo]:  # noqa: F821
    """Decode → check → mono → resample: the (T,) float32 wave at sample_rate that both training and the app use."""
    wave, info = decode(source, name)
    check_samples(wave, info, allow_silence)
    info.duration_s = wave.shape[-1] / info.sample_rate
    if info.channels > 1:
        info.notes.append(f"{LAYOUTS.get(info.channels, f'{info.channels}-channel')} audio "
                          f"({info.channels} channels) averaged to mono")
    if info.format not in ("WAV 16-bit PCM", "array"):  # the microphone default needs no note
        info.notes.append(f"decoded {info.format}")
    tensor = torch.from_numpy(np.ascontiguousarray(wave))
    if info.sample_rate != sample_rate:
        info.notes.append(f"resampled {info.sample_rate} Hz → {sample_rate} Hz")
        tensor = resample(tensor, info.sample_rate, sample_rate)
    return tensor, info
