"""Audio training data: decode + resample ONCE into memory (or per epoch in workers), then crop, augment and
log-mel batched on the training device — the audio twin of the image decode-once path (trainer/data/images.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torchaudio

from trainer.audio.decode import check_audio, load_waveform
from trainer.audio.frontend import LogMel, spectrogram_image
from trainer.config import AudioConfig
from trainer.errors import UserError

KEEP_CLIPS = 3  # collate keeps at most this many clip lengths of a long wave (see pad_collate)


class WaveDataset(torch.utils.data.Dataset):
    """A datasets split with an Audio column, decoded by our loader (not datasets'): (wave, label, row)."""

    def __init__(self, ds, column: str, label_column: str, sample_rate: int, targets=None) -> None:
        import datasets

        # Undecoded bytes/paths: trainer.audio.decode decodes them exactly as the app decodes an upload.
        self.ds = ds.cast_column(column, datasets.Audio(decode=False))
        self.column, self.label_column, self.sample_rate = column, label_column, sample_rate
        # multi-label data: each row's multi-hot float vector instead of its class id
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple:
        row = self.ds[i]
        wave, _ = load_waveform(row[self.column], self.sample_rate, name=f"row {i}", allow_silence=True)
        return wave, row[self.label_column] if self.targets is None else self.targets[i], i


class CachedWaves(torch.utils.data.Dataset):
    """Decoded waves held in one flat float32 tensor (offsets, lengths): (wave, label, row)."""

    def __init__(self, flat: torch.Tensor, offsets: torch.Tensor, labels: torch.Tensor) -> None:
        self.flat, self.offsets, self.labels = flat, offsets, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple:
        return self.flat[self.offsets[i]: self.offsets[i + 1]], \
            int(self.labels[i]) if self.labels.ndim == 1 else self.labels[i], i

    @classmethod
    def pack(cls, batches: list) -> CachedWaves:
        """From the batches of decode_all(..., collate_fn=list): lists of (wave, label, row)."""
        waves = [w for batch in batches for w, _, _ in batch]
        labels = [y for batch in batches for _, y, _ in batch]
        offsets = torch.tensor([0, *np.cumsum([len(w) for w in waves])], dtype=torch.long)
        return cls(torch.cat(waves), offsets, stack_labels(labels))


def stack_labels(labels: list) -> torch.Tensor:
    """Class ids as one long tensor, or multi-hot vectors (multi-label) as one (B, C) float tensor."""
    if labels and isinstance(labels[0], torch.Tensor) and labels[0].ndim == 1:
        return torch.stack(labels)
    return torch.tensor(labels, dtype=torch.long)


class PadCollate:
    """[(wave, label, row)] → ((waves (B, L) zero-padded, lengths (B,)), labels, rows) for the device crop.

    Waves longer than KEEP_CLIPS clips are first cut to a window of that length (random in training, centred
    in eval), so one long file does not ship minutes of samples to the device for a 1-second crop.
    """

    def __init__(self, clip_samples: int, train: bool) -> None:
        self.keep, self.train = KEEP_CLIPS * clip_samples, train

    def __call__(self, batch: list) -> tuple:
        waves = []
        for w, _, _ in batch:
            if len(w) > self.keep:
                extra = len(w) - self.keep
                start = int(torch.randint(0, extra + 1, ())) if self.train else extra // 2
                w = w[start: start + self.keep]
            waves.append(w)
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        padded = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True) if waves else torch.zeros(0, 0)
        labels = stack_labels([y for _, y, _ in batch])
        rows = torch.tensor([i for _, _, i in batch], dtype=torch.long)
        return (padded, lengths), labels, rows


SPEED_STEP = 0.02  # speed factors are drawn on this grid: a batch needs a few resampling kernels, not one per clip


def augment_waves(clips: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """Random gain (±gain_db), speed (1 ± speed), room reverb, time shift (≤ shift × clip, zero-filled) and white
    noise at a random SNR (torchaudio's add_noise), batched on the clips' device."""
    b, n, dev = clips.shape[0], clips.shape[1], clips.device
    if cfg.gain_db > 0:
        clips = clips * 10 ** ((torch.rand(b, 1, device=dev) * 2 - 1) * cfg.gain_db / 20)
    if cfg.speed > 0:
        clips = speed_perturb(clips, cfg.speed, cfg.sample_rate)
    if cfg.reverb_prob > 0:
        clips = reverb(clips, cfg.reverb_prob, cfg.reverb_rt60, cfg.sample_rate)
    if cfg.shift > 0:
        shift = ((torch.rand(b, device=dev) * 2 - 1) * cfg.shift * n).long()
        clips = _shift(clips, shift)
    if cfg.noise_prob > 0:
        lo, hi = cfg.noise_snr
        snr = lo + torch.rand(b, device=dev) * (hi - lo)
        noisy = torchaudio.functional.add_noise(clips, torch.randn_like(clips), snr)
        clips = torch.where(torch.rand(b, 1, device=dev) < cfg.noise_prob, noisy, clips)
    return clips


def speed_perturb(clips: torch.Tensor, max_change: float, sample_rate: int) -> torch.Tensor:
    """Each clip played at a speed within 1 ± max_change (tempo and pitch together, as torchaudio's
    SpeedPerturbation: the samples taken as recorded at speed × sample_rate, resampled to sample_rate), then cut
    or zero-padded back to its length around the centre. One torchaudio resample per distinct factor."""
    b, n = clips.shape
    steps = max(1, round(max_change / SPEED_STEP))
    factors = 1 + SPEED_STEP * torch.randint(-steps, steps + 1, (b,))
    out = clips.clone()
    for factor in factors.unique().tolist():
        rows = torch.nonzero(factors == factor)[:, 0].to(clips.device)
        if factor != 1:
            played = torchaudio.functional.resample(clips[rows], round(sample_rate * factor), sample_rate)
            out[rows] = _centre(played, n)
    return out


def _centre(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, m) → (B, n): the centred n samples, or zero-padded on both sides."""
    m = x.shape[1]
    if m >= n:
        return x[:, (m - n) // 2: (m - n) // 2 + n]
    return torch.nn.functional.pad(x, ((n - m) // 2, n - m - (n - m) // 2))


def reverb(clips: torch.Tensor, prob: float, rt60: list, sample_rate: int) -> torch.Tensor:
    """Room reverb on a random share `prob` of the clips: a synthetic impulse response (a direct path, then white
    noise under an exponential decay reaching -60 dB at an RT60 drawn from rt60) convolved with torchaudio's
    fftconvolve, each clip's level (RMS) kept."""
    b, n, dev = clips.shape[0], clips.shape[1], clips.device
    lo, hi = rt60
    t60 = lo + torch.rand(b, 1, device=dev) * (hi - lo)
    t = torch.arange(int(hi * sample_rate), device=dev)[None] / sample_rate
    rir = torch.randn(b, t.shape[1], device=dev) * torch.exp(-math.log(1000.0) * t / t60)  # amplitude: -60 dB at t60
    rir[:, 0] = 1.0
    wet = torchaudio.functional.fftconvolve(clips, rir / rir.norm(dim=1, keepdim=True))[:, :n]
    rms = clips.square().mean(1, keepdim=True).sqrt()
    wet = wet * rms / wet.square().mean(1, keepdim=True).sqrt().clamp(min=1e-8)
    return torch.where(torch.rand(b, 1, device=dev) < prob, wet, clips)


def _shift(clips: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move each clip right by shift[i] samples (left if negative), filling with zeros."""
    n = clips.shape[1]
    idx = torch.arange(n, device=clips.device)[None] - shift[:, None]
    valid = (idx >= 0) & (idx < n)
    return torch.gather(clips, 1, idx.clamp(0, n - 1)) * valid


def spec_augment(spec: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) with torchaudio's FrequencyMasking/TimeMasking: num_masks masks of each kind,
    drawn independently per clip and channel (iid_masks on the (B, C, F, T) batch), set to 0 (the normalised mean)."""
    maskers = [torchaudio.transforms.FrequencyMasking(cfg.freq_mask, iid_masks=True)] if cfg.freq_mask > 0 else []
    maskers += [torchaudio.transforms.TimeMasking(cfg.time_mask, iid_masks=True)] if cfg.time_mask > 0 else []
    for masker in maskers:
        for _ in range(cfg.num_masks):
            spec = masker(spec)
    return spec


class AudioPreprocess:
    """(padded waves, lengths) on the device → the model's input; training adds crop/wave/SpecAugment noise."""

    def __init__(self, cfg: AudioConfig, train: bool, channels_last: bool) -> None:
        self.cfg, self.train, self.channels_last = cfg, train, channels_last
        self.front = LogMel(cfg)

    def __call__(self, x: tuple) -> torch.Tensor:
        """Apply to one batch."""
        waves, lengths = x
        clips = self.front.clips(waves, lengths, train=self.train)
        if self.train:
            clips = augment_waves(clips, self.cfg)
        spec = self.front(clips)
        if self.train:
            spec = spec_augment(spec, self.cfg)
        return spec.contiguous(memory_format=torch.channels_last) if self.channels_last else spec


def spec_stats(ds: torch.utils.data.Dataset, cfg: AudioConfig, n: int) -> tuple[float, float]:
    """(mean, std) of the un-normalised log-mel of up to n train clips (centred, no augmentation)."""
    idx = np.random.default_rng(0).permutation(len(ds))[:n]
    front, collate = LogMel(cfg), PadCollate(cfg.clip_samples, train=False)
    total = total_sq = count = 0.0
    for i in range(0, len(idx), 256):
        (waves, lengths), _, _ = collate([ds[int(j)] for j in idx[i: i + 256]])
        spec = front.spectrogram(front.clips(waves, lengths)).double()
        total, total_sq, count = total + spec.sum().item(), total_sq + spec.square().sum().item(), count + spec.numel()
    mean = total / count
    return float(mean), float(max(total_sq / count - mean**2, 1e-12) ** 0.5)


def wave_bytes(ds: WaveDataset, n_rows: int) -> float:
    """Estimated bytes of n_rows decoded float32 waves, from the first 32 clips of ds."""
    probe = [len(ds[i][0]) for i in range(min(32, len(ds)))]
    return float(np.mean(probe)) * 4 * n_rows


def with_stats(cfg: AudioConfig, train_ds, log=print) -> AudioConfig:
    """The audio config with --spec-mean/--spec-std filled in from the train split when not given."""
    if cfg.spec_mean is not None and cfg.spec_std is not None:
        return cfg
    mean, std = spec_stats(train_ds, cfg, cfg.stats_samples)
    log(f"log-mel statistics on {min(len(train_ds), cfg.stats_samples)} train clips: mean {mean:.2f} dB, "
        f"std {std:.2f} dB", flush=True)
    return dataclasses.replace(cfg, spec_mean=cfg.spec_mean if cfg.spec_mean is not None else mean,
                               spec_std=cfg.spec_std if cfg.spec_std is not None else std)


def audio_data_cfg(cfg: AudioConfig) -> dict:
    """timm's data config for a spectrogram input: (C, n_mels, frames) and the log-mel normalisation."""
    c = cfg.in_chans
    return {"input_size": (c, cfg.n_mels, cfg.frames), "interpolation": "bilinear", "mean": (cfg.spec_mean,) * c,
            "std": (cfg.spec_std,) * c, "crop_pct": 1.0, "crop_mode": "center"}


class SpectrogramRows:
    """Rows of a split whose audio column reads as the eval spectrogram image (for eval/samples thumbnails)."""

    def __init__(self, ds, column: str, cfg: AudioConfig) -> None:
        import datasets

        self.ds, self.column, self.front = ds.cast_column(column, datasets.Audio(decode=False)), column, LogMel(cfg)

    def __getitem__(self, i: int) -> dict:
        source = self.ds[i][self.column]
        wave, _ = load_waveform(source, self.front.cfg.sample_rate, name=f"row {i}", allow_silence=True)
        return {self.column: spectrogram_image(self.front.eval_input(wave)[0])}


def verify_audio(ds, column: str) -> tuple:
    """Drop rows whose audio does not decode (local folders); return (dataset, dropped count)."""
    import datasets

    def ok(example: dict) -> bool:
        try:
            check_audio(example[column], allow_silence=True)
            return True
        except UserError:
            return False

    raw = ds.cast_column(column, datasets.Audio(decode=False))
    kept = raw.filter(ok, desc="check audio")
    return kept.cast_column(column, ds.features[column]), len(ds) - len(kept)
