"""The `audio` section of TrainConfig: the log-mel front end and the audio augmentations (flat CLI flags)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from trainer.errors import UserError
from trainer.fields import help_field as _f


@dataclass
class AudioConfig:
    sample_rate: int = _f(16000, "audio: resample every clip to this rate (Hz) before the spectrogram")
    clip_seconds: float = _f(1.0, "audio: fixed clip length; random crop in training, centre in eval, zero-pad")
    n_mels: int = _f(64, "audio: mel bands (the spectrogram image height)")
    n_fft: int = _f(512, "audio: STFT size in samples (Hann window of the same length)")
    hop_length: int = _f(160, "audio: STFT hop in samples (the spectrogram has clip/hop + 1 columns)")
    f_min: float = _f(0.0, "audio: lowest mel frequency (Hz)")
    f_max: float | None = _f(None, "audio: highest mel frequency (Hz); default: sample_rate / 2")
    mel_scale: Literal["slaney", "htk"] = _f("slaney", "audio: mel scale, as librosa htk=False/True (Slaney area norm)")
    top_db: float = _f(80.0, "audio: dB floor below each clip's peak (as librosa.power_to_db top_db)")
    spec_channels: Literal["1", "replicate", "multires"] = _f(
        "1", "audio: 1 channel (timm in_chans=1), 3 replicated channels, or 3 STFT sizes (n_fft/2, n_fft, 2 n_fft)")
    spec_mean: float | None = _f(None, "audio: log-mel normalisation mean; default: computed on the train split")
    spec_std: float | None = _f(None, "audio: log-mel normalisation std; default: computed on the train split")
    window_hop_seconds: float | None = _f(None, "audio: sliding-window hop for clips longer than --clip-seconds "
                                                "(app); default: clip_seconds / 2")
    freq_mask: int = _f(8, "audio SpecAugment: max width of each frequency mask, in mel bands (0 = off)")
    time_mask: int = _f(12, "audio SpecAugment: max width of each time mask, in frames (0 = off)")
    num_masks: int = _f(2, "audio SpecAugment: masks of each kind per clip")
    noise_prob: float = _f(0.5, "audio: probability of adding white noise to a training clip")
    noise_snr: list = _f([10.0, 40.0], "audio: SNR range (dB) of that noise", nargs=2, type=float)
    gain_db: float = _f(6.0, "audio: random gain within +- this many dB (0 = off)")
    shift: float = _f(0.1, "audio: random time shift up to this fraction of the clip, zero-filled (0 = off)")
    stats_samples: int = _f(2000, "audio: train clips used to compute --spec-mean/--spec-std")

    def __post_init__(self) -> None:
        if self.sample_rate < 1000:
            raise UserError(f"--sample-rate must be >= 1000 Hz, got {self.sample_rate}.")
        if not 0.05 <= self.clip_seconds <= 60:
            raise UserError(f"--clip-seconds must be within [0.05, 60], got {self.clip_seconds}.")
        if self.n_mels < 8 or self.n_fft < 16 or self.hop_length < 1:
            raise UserError(f"need --n-mels >= 8, --n-fft >= 16, --hop-length >= 1; got {self.n_mels}, "
                            f"{self.n_fft}, {self.hop_length}.")
        if self.n_fft > self.clip_samples:
            raise UserError(f"--n-fft {self.n_fft} is longer than the clip ({self.clip_samples} samples); lower it "
                            "or raise --clip-seconds.")
        nyquist = self.sample_rate / 2
        if not 0 <= self.f_min < self.fmax <= nyquist:
            raise UserError(f"need 0 <= --f-min < --f-max <= sample_rate/2 ({nyquist:g} Hz); got "
                            f"{self.f_min} and {self.f_max}.")
        if self.spec_std is not None and self.spec_std <= 0:
            raise UserError(f"--spec-std must be > 0, got {self.spec_std}.")
        if self.window_hop_seconds is not None and not 0 < self.window_hop_seconds <= self.clip_seconds:
            raise UserError(f"--window-hop-seconds must be within (0, clip_seconds], got {self.window_hop_seconds}.")
        if not 0 <= self.noise_prob <= 1 or not 0 <= self.shift < 1 or self.gain_db < 0:
            raise UserError("need 0 <= --noise-prob <= 1, 0 <= --shift < 1 and --gain-db >= 0.")

    @property
    def fmax(self) -> float:
        """The highest mel frequency actually used."""
        return float(self.f_max) if self.f_max is not None else self.sample_rate / 2

    @property
    def clip_samples(self) -> int:
        """Samples per fixed-length clip at sample_rate."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        """Spectrogram columns of one clip (centred STFT frames)."""
        return self.clip_samples // self.hop_length + 1

    @property
    def in_chans(self) -> int:
        """Input channels of the model (timm's in_chans)."""
        return 1 if self.spec_channels == "1" else 3

    @property
    def window_hop(self) -> float:
        """Sliding-window hop in seconds for long clips."""
        return self.window_hop_seconds or self.clip_seconds / 2

    def to_block(self) -> dict:
        """Every parameter, as the config.json `audio` block."""
        return dataclasses.asdict(self)

    @classmethod
    def from_block(cls, block: dict) -> AudioConfig:
        """Rebuild from a config.json `audio` block (unknown keys from newer writers are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in block.items() if k in names})
