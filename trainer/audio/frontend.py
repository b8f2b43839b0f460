"""The audio front end, ONE implementation for training and the app: wave → fixed clip → log-mel "image" (torch).

Everything after decoding (trainer/audio/decode.py) is batched torch code that runs unchanged on CPU and GPU:
crop/pad to --clip-seconds, STFT → mel → dB with a floor → normalisation with train-split statistics, and the
sliding window for long clips. The DSP is torchaudio's (Spectrogram, MelScale, AmplitudeToDB); tests/test_audio.py
checks it against librosa 0.11.0 (`filters.mel` slaney/htk, `feature.melspectrogram`, `power_to_db`), a
test/bench dependency only, so a Space does not install numba.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchaudio

from trainer.config import AudioConfig

# On CPU the mel spectrogram runs over sub-batches of about this many (frequency x frame) bins: the intermediates
# then stay in cache instead of page-faulting fresh memory on every call; 512 one-second clips at once ran 2x slower
# than 16 at a time (bench/bench_frontend.py). GPUs take the whole batch.
CPU_CHUNK_BINS = 1 << 19


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float,
                   scale: str = "slaney") -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters with Slaney area norm (torchaudio's melscale_fbanks), as
    librosa.filters.mel(htk=scale == 'htk')."""
    return torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney",
                                                 mel_scale=scale).T.contiguous()


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

    def _transforms(self, n_fft: int, device) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
        """(torchaudio Spectrogram, MelScale, AmplitudeToDB) for one STFT size, built once per device."""
        key = (n_fft, str(device))
        if key not in self._cache:
            c = self.cfg
            # centred STFT with zero padding and a periodic Hann window: librosa's melspectrogram. power=None: the
            # power is taken below as re² + im² (Spectrogram's power=2 takes |z| first, a square root, then squares)
            stft = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=c.hop_length, power=None, center=True,
                                                     pad_mode="constant")
            mel = torchaudio.transforms.MelScale(c.n_mels, c.sample_rate, c.f_min, c.fmax, n_fft // 2 + 1,
                                                 norm="slaney", mel_scale=c.mel_scale)
            db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=c.top_db)
            self._cache[key] = (stft.to(device), mel.to(device), db.to(device))
        return self._cache[key]

    def power_db(self, clips: torch.Tensor, n_fft: int) -> torch.Tensor:
        """(B, T) → (B, n_mels, frames) power mel spectrogram in dB, floored top_db below each clip's peak."""
        stft, mel, to_db = self._transforms(n_fft, clips.device)
        bins = (n_fft // 2 + 1) * (clips.shape[-1] // self.cfg.hop_length + 1)
        step = max(1, CPU_CHUNK_BINS // bins) if clips.device.type == "cpu" else max(1, len(clips))
        parts = []
        for i in range(0, len(clips), step):
            power = torch.view_as_real(stft(clips[i: i + step].float())).square_().sum(-1)
            # AmplitudeToDB floors top_db below the peak of a whole (..., C, F, T) block: on (B, 1, F, T) that block
            # is one clip, as librosa's power_to_db of each clip
            parts.append(to_db(mel(power)[:, None])[:, 0])
        return torch.cat(parts) if len(parts) != 1 else parts[0]

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
