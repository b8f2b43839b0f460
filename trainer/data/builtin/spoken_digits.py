"""Embedded `spoken-digits`: the words "zero".."nine" spoken by espeak-ng, split train/val/test BY VOICE.

One synthesizer (espeak-ng, Debian package) with ~100 voice variants × 3 speeds × 3 pitches: many voice settings,
not many speakers; the test split holds voices never heard in training. Deterministic for one espeak-ng version
(the cache name carries a hash of the voice list and the settings). Cached as Arrow under TIMM_SPACE_CACHE like
Fashion-MNIST. `make spoken-digits` or `python -m trainer.data.builtin.spoken_digits` builds it; `--dataset
spoken-digits` too.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trainer.errors import UserError, exit_on_user_error
from trainer.paths import cache_dir

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPEEDS = (130, 165, 200)  # words per minute (espeak-ng -s; its default is 175)
PITCHES = (30, 50, 70)  # espeak-ng -p, 0..99 (default 50)
BASE_VOICE = "en-us"
HELD_OUT = 0.15  # fraction of the voices in val, and again in test
VOICES_ENV = "TIMM_SPACE_SPOKEN_DIGITS_VOICES"  # comma-separated variants: a small subset for tests


def _espeak() -> str:
    """The espeak-ng binary, or a UserError saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UserError("spoken-digits needs espeak-ng: `apt-get install espeak-ng` (or run `make install`).")
    return exe


def list_variants() -> list[str]:
    """Every voice variant espeak-ng knows (`espeak-ng --voices=variant`), sorted by file name."""
    out = subprocess.run([_espeak(), "--voices=variant"], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    names = {line.split()[4].split("/", 1)[1] for line in out.splitlines()[1:]
             if len(line.split()) >= 5 and line.split()[4].startswith("!v/")}
    return sorted(names)


def split_by_voice(voices: list[str]) -> dict[str, str]:
    """voice → train/val/test: ranked by a hash of the name (deterministic, not alphabetical), 15% val, 15% test."""
    if len(voices) < 3:
        raise UserError(f"spoken-digits needs at least 3 voices to split by voice, got {voices}.")
    ranked = sorted(voices, key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    n_held = max(1, round(HELD_OUT * len(voices)))
    return {v: "test" if i < n_held else "val" if i < 2 * n_held else "train" for i, v in enumerate(ranked)}


def speak(word: str, voice: str, speed: int, pitch: int) -> bytes:
    """One utterance as 16-bit mono WAV bytes at espeak-ng's 22,050 Hz."""
    import soundfile as sf

    cmd = [_espeak(), "-v", f"{BASE_VOICE}+{voice}", "-s", str(speed), "-p", str(pitch), "--stdout", word]
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    data, sr = sf.read(io.BytesIO(raw), dtype="int16")  # --stdout writes a streaming header: rewrite it properly
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _jobs(voices: list[str]) -> list[tuple]:
    """(word index, voice, speed, pitch) for every clip, in a fixed order."""
    return [(d, v, s, p) for v in voices for d in range(len(DIGITS)) for s in SPEEDS for p in PITCHES]


def build(target: Path, voices: list[str]) -> None:
    """Synthesize every clip (parallel espeak-ng processes, progress bar) and save the DatasetDict as Arrow."""
    import datasets
    from tqdm.auto import tqdm

    split_of = split_by_voice(voices)
    jobs = _jobs(voices)
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:  # each job is one subprocess
        wavs = list(tqdm(pool.map(lambda j: speak(DIGITS[j[0]], j[1], j[2], j[3]), jobs), total=len(jobs),
                         desc="espeak-ng spoken digits", unit="clip"))
    features = datasets.Features({"audio": datasets.Audio(), "label": datasets.ClassLabel(names=DIGITS),
                                  "voice": datasets.Value("string"), "speed": datasets.Value("int32"),
                                  "pitch": datasets.Value("int32")})
    splits = {}
    for name in ("train", "val", "test"):
        rows = [(j, w) for j, w in zip(jobs, wavs, strict=True) if split_of[j[1]] == name]
        splits[name] = datasets.Dataset.from_dict(
            {"audio": [{"bytes": w, "path": f"{DIGITS[j[0]]}_{j[1]}_{j[2]}_{j[3]}.wav"} for j, w in rows],
             "label": [j[0] for j, _ in rows], "voice": [j[1] for j, _ in rows],
             "speed": [j[2] for j, _ in rows], "pitch": [j[3] for j, _ in rows]}, features=features)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.DatasetDict(splits).save_to_disk(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def chosen_voices() -> list[str]:
    """The voices to synthesize: $TIMM_SPACE_SPOKEN_DIGITS_VOICES if set (tests), else every variant."""
    known = list_variants()
    wanted = [v.strip() for v in os.environ.get(VOICES_ENV, "").split(",") if v.strip()]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise UserError(f"{VOICES_ENV}: unknown espeak-ng voice variant(s) {unknown}; known: {known[:20]} …")
    return sorted(wanted) or known


def cache_path(voices: list[str]) -> Path:
    """The Arrow cache dir for this voice set and these settings (another set never overwrites it)."""
    key = repr((voices, DIGITS, SPEEDS, PITCHES, BASE_VOICE, HELD_OUT)).encode()
    return cache_dir("datasets") / f"spoken-digits-v1-{hashlib.sha256(key).hexdigest()[:10]}"


def load_spoken_digits():
    """The spoken-digits DatasetDict (train/val/test by voice), synthesizing it on first use."""
    import datasets

    voices = chosen_voices()
    target = cache_path(voices)
    if not (target / "dataset_dict.json").exists():
        print(f"synthesizing spoken-digits ({len(voices)} voices) into {target} (one time) ...", flush=True)
        build(target, voices)
    return datasets.load_from_disk(str(target))


def main() -> None:
    """`python -m trainer.data.builtin.spoken_digits`: build (or find) the cache and print its splits."""
    dd = load_spoken_digits()
    print({k: len(v) for k, v in dd.items()}, "voices per split:",
          {k: len(set(v["voice"])) for k, v in dd.items()}, "in", cache_path(chosen_voices()), flush=True)


if __name__ == "__main__":
    exit_on_user_error(main)
