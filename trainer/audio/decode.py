"""Decode any audio input to one mono float32 wave at the model's rate, with bounded cost and a clear error when it
is unusable.

The same loader reads training rows (a datasets Audio column, read undecoded) and the app's uploads, so both sides
see the same samples. FFmpeg decodes every format through torchcodec (what `datasets` itself decodes with). The cost
of a request is bounded before and while decoding: the sample rate, channel count and duration come from the
stream's metadata and are checked first; the stream is then decoded in chunks of CHUNK_FRAMES, each downmixed to
mono and resampled at once, so neither a 384 kHz file nor a stream without a duration (WebM) is ever held whole at
its own rate, and decoding stops past MAX_SECONDS. Resampling is torchaudio's band-limited sinc
(`torchaudio.transforms.Resample`, the kernel of `torchaudio.functional.resample`, applied to overlapping segments:
the samples of the whole wave); a rate pair whose kernel would pass KERNEL_MAX_ELEMENTS (e.g. 44,101 → 16,000 Hz:
2.8 GB) goes through soxr's streaming resampler instead.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio

from trainer.errors import UserError

MIN_SECONDS = 0.01  # shorter than one 10 ms STFT hop holds nothing to classify
MAX_SECONDS = 3600.0  # an hour: longer uploads are refused (from the header, else while decoding), not cut silently
MIN_RATE, MAX_RATE = 1000, 384_000  # Hz: what a microphone, a phone line or a studio file can hold
# Samples decoded at the file's own rate: the hour at 48 kHz. Past it the work (decoding, resampling) would not end
# in seconds: a 59-minute 384 kHz file holds 1.36 G samples, refused from its header before any is decoded.
MAX_SAMPLES = int(MAX_SECONDS * 48_000)
MAX_CHANNELS = 32
CHUNK_FRAMES = 1 << 19  # frames per decode call: with MAX_CHANNELS, at most 64 MiB of float32 in flight
KERNEL_MAX_ELEMENTS = 1 << 20  # 4 MiB of float32: 44.1/48/22.05/11.025/8 kHz → 16 kHz need at most 0.3 M
# torchaudio.functional.resample's defaults, recorded in config.json (`resampler`) with the audio block.
RESAMPLER = "torchaudio sinc_interp_hann (lowpass_filter_width 6, rolloff 0.99); soxr HQ past a 1 M-element kernel"
FORMATS = "WAV, FLAC, OGG, MP3 or another format FFmpeg reads"
# FFmpeg codec → what people call it (PCM codecs little-endian: the WAV layouts)
CODECS = {"pcm_u8": "WAV 8-bit unsigned PCM", "pcm_s8": "8-bit PCM", "pcm_s16le": "WAV 16-bit PCM",
          "pcm_s24le": "WAV 24-bit PCM", "pcm_s32le": "WAV 32-bit PCM", "pcm_f32le": "WAV 32-bit float",
          "pcm_f64le": "WAV 64-bit float", "vorbis": "OGG Vorbis", "opus": "Opus", "mp3": "MP3", "aac": "AAC"}
SAMPLE_FORMATS = {"s16": "16-bit PCM", "s32": "24/32-bit PCM", "u8": "8-bit PCM"}
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
    """Refuse clips too short to hold anything and too long to decode safely (from the header when it says)."""
    if frames <= 0 or sr <= 0:
        raise UserError(f"{name}: the clip has no samples (0 s of audio).")
    if frames / sr < MIN_SECONDS:
        raise UserError(f"{name}: the clip is {frames} sample(s) long ({1000 * frames / sr:.2f} ms); at least "
                        f"{1000 * MIN_SECONDS:.0f} ms of audio is needed.")
    if frames / sr > MAX_SECONDS:
        raise UserError(f"{name}: the clip is {frames / sr / 60:.0f} minutes long; the limit is "
                        f"{MAX_SECONDS / 60:.0f} minutes. Trim it first.")
    if frames > MAX_SAMPLES:
        raise UserError(f"{name}: the clip holds {frames / 1e6:.0f} M samples ({frames / sr / 60:.0f} minutes at "
                        f"{sr} Hz); the limit is {MAX_SAMPLES / 1e6:.0f} M samples, e.g. {MAX_SECONDS / 60:.0f} "
                        "minutes at 48 kHz. Trim or downsample it first.")


def _format(meta) -> str:
    """A readable name of the stream's encoding, e.g. 'WAV 24-bit PCM', 'FLAC 16-bit PCM', 'MP3'."""
    if meta.codec == "flac":
        return f"FLAC {SAMPLE_FORMATS.get(meta.sample_format, meta.sample_format)}"
    return CODECS.get(meta.codec, f"{meta.codec} (FFmpeg)")


def _open(src, info: WaveInfo):
    """A torchcodec AudioDecoder whose metadata passed the bounds (rate, channels, duration); fills in info."""
    from torchcodec.decoders import AudioDecoder  # loads FFmpeg's shared libraries: on first use, not at import

    try:
        decoder = AudioDecoder(src.getvalue() if isinstance(src, io.BytesIO) else str(src))
        meta = decoder.metadata
    except (RuntimeError, ValueError):  # FFmpeg finds no audio stream: text, pictures, random or cut-off bytes
        raise UserError(f"{info.name}: not an audio file that can be read (expected {FORMATS}).") from None
    info.sample_rate, info.channels = int(meta.sample_rate or 0), int(meta.num_channels or 0)
    info.format = _format(meta)
    _check_stream(info)
    duration = meta.duration_seconds_from_header
    if duration is not None and (duration > MAX_SECONDS or duration * info.sample_rate > MAX_SAMPLES):
        _check_duration(int(duration * info.sample_rate), info.sample_rate, info.name)
    return decoder


def _check_stream(info: WaveInfo) -> None:
    """Sample rate and channel count within what is read, before a sample is decoded."""
    if not MIN_RATE <= info.sample_rate <= MAX_RATE:
        raise UserError(f"{info.name}: the sample rate is {info.sample_rate} Hz; rates from {MIN_RATE // 1000} kHz "
                        f"to {MAX_RATE // 1000} kHz are read. Resample it first (e.g. to 16 kHz).")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise UserError(f"{info.name}: the audio has {info.channels} channels; at most {MAX_CHANNELS} are read.")


def _chunks(decoder, info: WaveInfo):
    """Mono float32 chunks of the stream at its own rate, CHUNK_FRAMES at a time; refused past MAX_SECONDS even
    when the header gave no duration."""
    frames, k = 0, 0
    while True:
        start = k * CHUNK_FRAMES / info.sample_rate  # from k, not a running sum: no rounding drift between chunks
        try:
            data = decoder.get_samples_played_in_range(start, start + CHUNK_FRAMES / info.sample_rate).data
        except RuntimeError as e:
            if "No audio frames were decoded" in str(e):  # torchcodec's word for "past the end"
                return
            raise UserError(f"{info.name}: not an audio file that can be read (expected {FORMATS}).") from None
        if data.shape[1] == 0:
            return
        frames += data.shape[1]
        if frames > min(MAX_SECONDS * info.sample_rate, MAX_SAMPLES):  # a header without (or with a false) duration
            raise UserError(f"{info.name}: the clip is longer than the limit ({MAX_SECONDS / 60:g} minutes, and "
                            f"{MAX_SAMPLES / 1e6:.0f} M samples at its own rate). Trim it first.")
        yield data.float().mean(0) if data.shape[0] > 1 else data[0].float()
        k += 1


def _array_chunks(array, info: WaveInfo):
    """An already decoded datasets array (decode=True) as one mono chunk."""
    array = np.asarray(array, dtype=np.float32)
    info.channels, info.format = (1 if array.ndim == 1 else min(array.shape)), "array"
    _check_stream(info)
    mono = array if array.ndim == 1 else array.mean(axis=int(np.argmin(array.shape)))
    yield torch.from_numpy(np.ascontiguousarray(mono))


class _Output:
    """The resampled wave, written into one buffer sized from the header's duration (no second copy of a long wave
    when it is joined); chunks past that size, or of a stream without a duration, are joined at the end."""

    def __init__(self, expected: int) -> None:
        self.buffer, self.used, self.rest = torch.empty(expected), 0, []

    def append(self, chunk: torch.Tensor) -> None:
        fit = min(len(chunk), len(self.buffer) - self.used)
        self.buffer[self.used: self.used + fit] = chunk[:fit]
        self.used += fit
        if fit < len(chunk):
            self.rest.append(chunk[fit:])

    def result(self) -> torch.Tensor:
        head = self.buffer[: self.used]
        return torch.cat([head, *self.rest]) if self.rest else head


class _Tally:
    """What the checks need to know of every decoded sample, gathered chunk by chunk."""

    def __init__(self) -> None:
        self.frames = self.bad = 0
        self.nonzero, self.peak = False, 0.0

    def add(self, chunk: torch.Tensor) -> None:
        finite = torch.isfinite(chunk)
        self.frames += chunk.numel()
        self.bad += int((~finite).sum())
        self.nonzero = self.nonzero or bool(chunk.any())
        self.peak = max(self.peak, float(chunk.abs().max()) if chunk.numel() else 0.0)


def _check_samples(tally: _Tally, info: WaveInfo, allow_silence: bool) -> None:
    """NaN/inf samples are refused; an all-zero clip is refused unless allow_silence (a dataset may hold some)."""
    if tally.bad:
        raise UserError(f"{info.name}: {tally.bad} of {tally.frames} samples are NaN or infinite; the file is "
                        "corrupt. Re-export it.")
    if not allow_silence and not tally.nonzero:
        raise UserError(f"{info.name}: the clip is silent (every sample is 0). Record again and check the "
                        "microphone.")
    if tally.peak > 1.0:
        info.notes.append(f"float samples beyond ±1 (peak {tally.peak:.2f}) used as they are")


def _read(source, sample_rate: int | None, name: str | None,
          allow_silence: bool) -> tuple[torch.Tensor | None, WaveInfo]:
    """Decode → check → mono → (resample and keep the wave at sample_rate | check only, keeping nothing: None)."""
    src, default_name = _source(source)
    info = WaveInfo(name=(name or default_name)[:80])  # names are echoed in messages: keep them short
    seconds = 0.0
    if isinstance(src, tuple):
        info.sample_rate = int(src[1])
        chunks = _array_chunks(src[0], info)
    else:
        _check_file(src, info.name)
        decoder = _open(src, info)
        seconds, chunks = decoder.metadata.duration_seconds_from_header or 0.0, _chunks(decoder, info)
    tally = _Tally()
    if sample_rate is None:
        for chunk in chunks:
            tally.add(chunk)
    else:
        resampler, out = Resampler(info.sample_rate, sample_rate), _Output(math.ceil(seconds * sample_rate))
        for chunk in chunks:
            tally.add(chunk)
            out.append(resampler.feed(chunk))
        out.append(resampler.finish())
    _check_duration(tally.frames, info.sample_rate, info.name)
    _check_samples(tally, info, allow_silence)
    info.duration_s = tally.frames / info.sample_rate
    if info.channels > 1:
        info.notes.append(f"{LAYOUTS.get(info.channels, f'{info.channels}-channel')} audio "
                          f"({info.channels} channels) averaged to mono")
    if info.format not in ("WAV 16-bit PCM", "array"):  # the microphone default needs no note
        info.notes.append(f"decoded {info.format}")
    if sample_rate is None:
        return None, info
    if info.sample_rate != sample_rate:
        info.notes.append(f"resampled {info.sample_rate} Hz → {sample_rate} Hz")
    return out.result(), info


def load_waveform(source, sample_rate: int, name: str | None = None,
                  allow_silence: bool = False) -> tuple[torch.Tensor, WaveInfo]:
    """Decode → check → mono → resample: the (T,) float32 wave at sample_rate that training and the app both use,
    or a UserError saying why the input is unusable."""
    return _read(source, sample_rate, name, allow_silence)


def check_audio(source, name: str | None = None, allow_silence: bool = False) -> WaveInfo:
    """The checks of load_waveform (bounds, NaN/inf, silence, length) on every decoded sample, without resampling or
    keeping the wave: what the input is, or a UserError saying why it is unusable."""
    return _read(source, None, name, allow_silence)[1]


@functools.lru_cache(maxsize=16)  # building a kernel costs more than applying it to a 1-second clip
def _plan(orig_sr: int, new_sr: int) -> tuple[torchaudio.transforms.Resample, int, int, int] | None:
    """(torchaudio's Resample for this rate pair, its context in input samples, orig, new of the gcd-reduced
    pair), or None when its kernel would hold more than KERNEL_MAX_ELEMENTS."""
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))  # torchaudio's kernel half-width for these settings
    if new * (orig + 2 * width) > KERNEL_MAX_ELEMENTS:
        return None
    # functional.resample's defaults, its kernel built in float32 as it builds it for a float32 wave
    module = torchaudio.transforms.Resample(orig_sr, new_sr, resampling_method="sinc_interp_hann",
                                            lowpass_filter_width=6, rolloff=0.99, dtype=torch.float32)
    return module, -(-width // orig) * orig, orig, new  # context: whole frames of `orig` samples covering width


class Resampler:
    """Streaming resampler of a mono wave fed in chunks: the samples torchaudio.functional.resample gives for the
    whole wave, through torchaudio's public `transforms.Resample` on overlapping segments. Output frame f (`new`
    samples) reads input [f x orig - width, (f + 1) x orig + width); a segment that starts on a frame boundary and
    reaches `context` >= width samples past the frames it keeps computes them as the whole wave would; between
    chunks it holds fewer than 2 x context + orig input samples. Rate pairs past KERNEL_MAX_ELEMENTS go through
    soxr's streaming resampler (any ratio, bounded memory)."""

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        self.identity = orig_sr == new_sr
        self.plan = None if self.identity else _plan(int(orig_sr), int(new_sr))
        # buffer: the input from sample `start` on; `done`: the input whose frames are already emitted
        self.buffer, self.start, self.done = torch.zeros(0), 0, 0
        if self.plan is None and not self.identity:
            import soxr  # only for rate pairs no kernel fits

            self.stream = soxr.ResampleStream(orig_sr, new_sr, 1, dtype="float32", quality="HQ")

    def _segment(self, stop: int | None) -> torch.Tensor:
        """The frames of input [done, stop) (stop on a frame boundary; None: to the end, as the whole wave ends)."""
        module, context, orig, new = self.plan
        segment = self.buffer if stop is None else self.buffer[: stop + context - self.start]
        # drop the left context's frames; the wave's first segment has none (torchaudio pads zeros, as for the whole)
        out = module(segment)[(self.done - self.start) // orig * new:]
        return out if stop is None else out[: (stop - self.done) // orig * new]

    def feed(self, chunk: torch.Tensor) -> torch.Tensor:
        """The output samples that this chunk completes."""
        if self.identity:
            return chunk
        if self.plan is None:
            return torch.from_numpy(self.stream.resample_chunk(chunk.numpy()))
        _, context, orig, _ = self.plan
        self.buffer = torch.cat([self.buffer, chunk])
        stop = (self.start + len(self.buffer) - context) // orig * orig  # frames before it see all their input
        if stop <= self.done:
            return torch.zeros(0)
        out = self._segment(stop)
        self.done, start = stop, max(0, stop - context)  # the next segment starts `context` before its frames
        self.buffer, self.start = self.buffer[start - self.start:], start
        return out

    def finish(self) -> torch.Tensor:
        """The last samples, so the output has ceil(new_sr x length / orig_sr) samples as torchaudio's."""
        if self.identity:
            return torch.zeros(0)
        if self.plan is None:
            return torch.from_numpy(self.stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        return self._segment(None) if len(self.buffer) else torch.zeros(0)


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """A whole mono wave (T,) from orig_sr to new_sr, through the streaming Resampler (bounded memory)."""
    resampler = Resampler(orig_sr, new_sr)
    return torch.cat([resampler.feed(wave.float()), resampler.finish()])
