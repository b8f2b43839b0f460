"""The audio front end, ONE implementation for training and the app: wave → fixed clip → log-mel "image" (torch).

Everything after decoding (trainer/audio/decode.py) is batched torch code that runs unchanged on CPU and GPU:
crop/pad to --clip-seconds, STFT → mel → dB with a floor → normalisation with train-split statistics, and the
sliding window for long clips. Library checked for the maths: librosa 0.11.0 (`filters.mel` slaney/htk,
`feature.melspectrogram`, `power_to_db`; tests/test_audio.py compares against it). librosa is a test/bench
dependency only, so a Space does not install numba.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainer.config import AudioConfig

AMIN = 1e-10  # power floor before the log, as librosa.power_to_db
# On CPU the STFT runs over sub-batches of about this many (frequency x frame) bins: the intermediates then stay
# in cache instead of page-faulting fresh memory on every call; 512 one-second clips at once ran 2x slower than
# 16 at a time (bench/bench_frontend.py). GPUs take the whole batch.
CPU_CHUNK_BINS = 1 << 19


def hz_to_mel(f: torch.Tensor, htk: bool) -> torch.Tensor:
    """Hz → mel: HTK's 2595 log10(1 + f/700), or Slaney's (linear below 1 kHz, log above) as librosa."""
    if htk:
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = math.log(6.4) / 27.0
    mel = f / f_sp
    log_part = min_log_hz / f_sp + torch.log(torch.clamp(f, min=min_log_hz) / min_log_hz) / logstep
    return torch.where(f >= min_log_hz, log_part, mel)


def mel_to_hz(m: torch.Tensor, htk: bool) -> torch.Tensor:
    """The inverse of hz_to_mel."""
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float,
                   scale: str = "slaney") -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters with Slaney area norm, as librosa.filters.mel(htk=scale=='htk')."""
    htk = scale == "htk"
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64), htk)
    mel_f = mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64), htk)
    fdiff = mel_f.diff()
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]  # Slaney: each filter has the same area
    return weights.float()


def fix_length(waves: torch.Tensor, lengths: torch.Tensor, n: int, train: bool) -> torch.Tensor:
    """(B, L) padded waves with true lengths → (B, n): random (train) or centred crop; short clips zero-padded
    at a random (train) or centred offset. One gather, so it runs batched on the training device."""
    b, dev = waves.shape[0], waves.device
    lengths = lengths.to(dev).long()
    extra = (lengths - n).clamp(min=0)  # room to crop
    room = (n - lengths).clamp(min=0)  # room to place a short clip
    if train:
        start = (torch.rand(b, device=dev) * (extra + 1)).long()
        offset = (torch.rand(b, device=dev) * (room + 1)).long()
    else:
        start, offset = extra // 2, room // 2
    idx = (start - offset)[:, None] + torch.arange(n, device=dev)[None]
    valid = (idx >= 0) & (idx < lengths[:, None])
    if waves.shape[1] == 0:
        return torch.zeros(b, n, device=dev)
    out = torch.gather(waves, 1, idx.clamp(0, waves.shape[1] - 1))
    return out * valid


class LogMel:
    """Fixed-length clips (B, n) → normalised log-mel (B, C, n_mels, frames); the model's input."""

    def __init__(self, cfg: AudioConfig) -> None:
        self.cfg = cfg
        n = cfg.n_fft
        self.n_ffts = (n // 2, n, 2 * n) if cfg.spec_channels == "multires" else (n,)
        self._cache: dict = {}

    def _filters(self, n_fft: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(Hann window, mel filterbank) for one STFT size, built once per device."""
        key = (n_fft, str(device))
        if key not in self._cache:
            c = self.cfg
            fb = mel_filterbank(c.sample_rate, n_fft, c.n_mels, c.f_min, c.fmax, c.mel_scale)
            self._cache[key] = (torch.hann_window(n_fft, periodic=True, device=device), fb.to(device))
        return self._cache[key]

    def power_db(self, clips: torch.Tensor, n_fft: int) -> torch.Tensor:
        """(B, T) → (B, n_mels, frames) power mel spectrogram in dB, floored top_db below each clip's peak."""
        window, fb = self._filters(n_fft, clips.device)
        bins = (n_fft // 2 + 1) * (clips.shape[-1] // self.cfg.hop_length + 1)
        step = max(1, CPU_CHUNK_BINS // bins) if clips.device.type == "cpu" else max(1, len(clips))
        parts = []
        for i in range(0, len(clips), step):
            spec = torch.stft(clips[i: i + step].float(), n_fft, self.cfg.hop_length, window=window, center=True,
                              pad_mode="constant", return_complex=True)
            power = torch.view_as_real(spec).square_().sum(-1)
            parts.append(torch.matmul(fb, power).clamp_(min=AMIN).log10_().mul_(10.0))
        db = torch.cat(parts) if len(parts) != 1 else parts[0]
        return torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - self.cfg.top_db)

    def spectrogram(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T) → (B, C, n_mels, frames) in dB, before normalisation."""
        specs = [self.power_db(clips, n) for n in self.n_ffts]
        if self.cfg.spec_channels == "replicate":
            specs = specs * 3
        return torch.stack(specs, 1)

    def normalize(self, spec: torch.Tensor) -> torch.Tensor:
        """(x - spec_mean) / spec_std with the train-split statistics (identity before they are known)."""
        mean = self.cfg.spec_mean if self.cfg.spec_mean is not None else 0.0
        std = self.cfg.spec_std if self.cfg.spec_std is not None else 1.0
        return (spec - mean) / std

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T) fixed-length clips → normalised (B, C, n_mels, frames)."""
        return self.normalize(self.spectrogram(clips))

    def clips(self, waves: torch.Tensor, lengths: torch.Tensor, train: bool = False) -> torch.Tensor:
        """Padded waves (B, L) + lengths → fixed-length clips (B, clip_samples)."""
        return fix_length(waves, lengths, self.cfg.clip_samples, train)

    def eval_input(self, wave: torch.Tensor) -> torch.Tensor:
        """One mono wave (T,) at sample_rate → the (1, C, n_mels, frames) eval input (centred clip)."""
        clip = self.clips(wave[None], torch.tensor([wave.shape[-1]], device=wave.device))
        return self(clip)


def window_starts(length: int, cfg: AudioConfig) -> list[int]:
    """Start samples of the sliding windows over a long clip; the last window ends at the clip's end."""
    n, hop = cfg.clip_samples, max(1, int(round(cfg.window_hop * cfg.sample_rate)))
    starts = list(range(0, max(length - n, 0) + 1, hop))
    if starts[-1] + n < length:
        starts.append(length - n)
    return starts


@torch.no_grad()
def sliding_window_logits(wave: torch.Tensor, front: LogMel, model_fn: Callable[[torch.Tensor], torch.Tensor],
                          chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean logits (K,), per-window logits (W, K)) of a mono wave at the front end's rate.

    A clip no longer than --clip-seconds is one centred window, exactly the eval input of training. Longer clips
    are cut into windows of clip_seconds every window_hop_seconds, classified `chunk` windows at a time (a
    30-minute clip never holds more than `chunk` spectrograms), and the window logits averaged.
    """
    n = front.cfg.clip_samples
    if wave.shape[-1] <= n:
        logits = model_fn(front.eval_input(wave)).float()
        return logits.mean(0), logits
    starts = window_starts(wave.shape[-1], front.cfg)
    out = []
    for i in range(0, len(starts), chunk):
        batch = torch.stack([wave[s: s + n] for s in starts[i: i + chunk]])
        out.append(model_fn(front(batch)).float())
    logits = torch.cat(out)
    return logits.mean(0), logits


def spectrogram_image(spec: torch.Tensor, height: int = 192) -> "PIL.Image.Image":  # noqa: F821
    """A (C, F, T) or (F, T) spectrogram as a colour image: low frequencies at the bottom, magma colours."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    spec = spec.detach().float().cpu()
    if spec.ndim == 3:
        spec = spec[spec.shape[0] // 2]  # multires: the middle (--n-fft) resolution
    x = spec.flip(0).numpy()
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    rgb = (colormaps["magma"](x)[..., :3] * 255).astype(np.uint8)
    image = Image.fromarray(rgb)
    scale = max(1, height // rgb.shape[0])
    return image.resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
