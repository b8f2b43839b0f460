"""Benchmark: the batched torch log-mel front end (trainer/audio/frontend.py) vs librosa doing the same work on the
same clips.

Same work on both sides: centred STFT (Hann, n_fft 512, hop 160) → power → 64 slaney mels → dB with an 80 dB floor
per clip, on 1-second 16 kHz clips. librosa gets the same batches (it accepts a (B, T) array) and its per-clip loop
is timed too. Needs only torch + numpy (+ librosa when installed: without it, e.g. on a GPU machine with torch alone,
only the torch side is timed). Writes bench/results/frontend_<device>_<date>.json.

    python bench/bench_frontend.py [--clips 512] [--batch-sizes 1 8 32 128 512] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from trainer.audio.frontend import LogMel  # noqa: E402
from trainer.config import AudioConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def make_clips(n: int, sr: int, seed: int = 0) -> np.ndarray:
    """n deterministic 1-second speech-band clips (harmonics + noise), float32 (n, sr)."""
    rng = np.random.default_rng(seed)
    t = np.arange(sr) / sr
    f0 = rng.uniform(90, 250, (n, 1))
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    return (0.3 * x + 0.01 * rng.standard_normal((n, sr))).astype(np.float32)


def time_it(fns: list, repeats: int) -> list[float]:
    """Best of `repeats` wall times (s) of each fn, after a warm-up call; the fns take turns in every round, so a
    neighbour's load on a shared machine hits both sides alike, and the minimum filters it out. The pause before
    each timing lets the other side's spinning thread pool (torch's OpenMP, numpy's OpenBLAS) go idle first: it
    cost the next timing up to 40% when they ran back to back."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            time.sleep(0.2)
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def torch_runner(clips: np.ndarray, batch: int, cfg: AudioConfig, device: str):
    """A callable computing every clip's log-mel with the torch front end, `batch` clips at a time."""
    front = LogMel(cfg)
    data = torch.from_numpy(clips).to(device)

    def run() -> None:
        for i in range(0, len(data), batch):
            front.spectrogram(data[i: i + batch])
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return run


def librosa_runner(clips: np.ndarray, batch: int | None, cfg: AudioConfig):
    """A callable doing the same with librosa on (batch, T) arrays (dB floor per clip, as the torch side);
    batch None: the usual per-clip loop over 1-D arrays."""
    import librosa

    def run() -> None:
        for i in range(0, len(clips), batch or 1):
            power = librosa.feature.melspectrogram(
                y=clips[i: i + batch] if batch else clips[i], sr=cfg.sample_rate, n_fft=cfg.n_fft,
                hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.fmax, center=True,
                pad_mode="constant")
            for p in power if batch else [power]:
                librosa.power_to_db(p, ref=1.0, amin=1e-10, top_db=cfg.top_db)

    return run


def check_same(clips: np.ndarray, cfg: AudioConfig) -> float | None:
    """Max |dB difference| between torch and librosa on 4 clips (None without librosa)."""
    try:
        import librosa
    except ImportError:
        return None
    ours = LogMel(cfg).spectrogram(torch.from_numpy(clips[:4]))[:, 0].numpy()
    power = librosa.feature.melspectrogram(y=clips[:4], sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                           n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.fmax, pad_mode="constant")
    ref = np.stack([librosa.power_to_db(p, ref=1.0, amin=1e-10, top_db=cfg.top_db) for p in power])
    return float(np.abs(ours - ref).max())


def environment(device: str) -> dict:
    """Versions and hardware for the results file."""
    try:
        import librosa

        librosa_version = librosa.__version__
    except ImportError:
        librosa_version = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    return {"torch": torch.__version__, "numpy": np.__version__, "librosa": librosa_version,
            "python": platform.python_version(), "device": device, "gpu": gpu, "cpu_cores": cores,
            "torch_threads": torch.get_num_threads(), "machine": platform.machine(), "date": date.today().isoformat()}


def main(argv: list[str] | None = None) -> dict:
    """Time both front ends per batch size; print the table and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=512)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128, 512])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    cfg = AudioConfig()
    clips = make_clips(args.clips, cfg.sample_rate)
    env = environment(args.device)
    have_librosa = env["librosa"] is not None
    loop_s = time_it([librosa_runner(clips, None, cfg)], args.repeats)[0] if have_librosa else None
    rows = []
    print(f"{args.clips} clips of 1 s at 16 kHz on {args.device} (torch {torch.__version__}, "
          f"{env['cpu_cores']} cores, librosa {env['librosa']})")
    for b in args.batch_sizes:
        runners = [torch_runner(clips, b, cfg, args.device)] + ([librosa_runner(clips, b, cfg)] if have_librosa else [])
        t_torch, t_lib = [*time_it(runners, args.repeats), None][:2]
        row = {"batch_size": b, "torch_s": t_torch, "torch_clips_per_s": args.clips / t_torch, "librosa_s": t_lib,
               "speedup_vs_librosa_same_batch": t_lib / t_torch if t_lib else None,
               "speedup_vs_librosa_per_clip_loop": loop_s / t_torch if loop_s else None}
        rows.append(row)
        print(f"batch {b:4d}: torch {row['torch_clips_per_s']:8.0f} clips/s"
              + (f" | librosa {args.clips / t_lib:7.0f} clips/s | speedup ×{row['speedup_vs_librosa_same_batch']:.2f}"
                 f" (×{row['speedup_vs_librosa_per_clip_loop']:.2f} vs librosa's per-clip loop)" if t_lib else ""))
    best = max(rows, key=lambda r: r["torch_clips_per_s"])  # the batch size to run the front end at
    result = {"benchmark": "log-mel front end: STFT + mel + dB", "config": cfg.to_block(), "clips": args.clips,
              "environment": env, "max_abs_db_difference": check_same(clips, cfg),
              "librosa_per_clip_loop_s": loop_s, "results": rows, "best": best}
    out = args.out or RESULTS / f"frontend_{args.device.split(':')[0]}_{env['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"best torch batch size {best['batch_size']}: ×{best['speedup_vs_librosa_same_batch'] or 0:.2f} vs "
          f"librosa on the same batches; wrote {out}")
    return result


if __name__ == "__main__":
    main()
