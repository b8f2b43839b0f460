"""Embedded `spoken-digits`: "zero".."nine" spoken by espeak-ng in 7 English accents × ~100 voice variants.

Split by voice variant AND by accent: val and test hold variants never heard in training, and whole accents are
held out (val: Caribbean; test: Received Pronunciation and West Midlands), so test accents are never heard in
training. Each clip has its own speed and pitch, drawn from a hash of (accent, variant, word, take): training
clips are spoken twice (two draws), held-out clips once. The `group` column names what a held-out clip tests
("training accents" = unseen variants of the training accents, or the held-out accent) and is what
`--group-column group` reports per group. Deterministic for one espeak-ng version; cached as Arrow under
TIMM_SPACE_CACHE. `make spoken-digits` or `python -m trainer.data.builtin.spoken_digits` builds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trainer.errors import UserError, exit_on_user_error
from trainer.paths import cache_dir

VERSION = "v2"  # of the synthesis: bump it when the clips change (it names the cache; the manifest records it)
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# espeak-ng's English accents (`espeak-ng --voices=en`, its own gmw/ voices; en-us-nyc differs from en-us in
# three of the ten words only, so it adds nothing here). Held-out accents are never heard in training.
TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan")
VAL_ACCENTS = ("en-029",)
TEST_ACCENTS = ("en-gb-x-rp", "en-gb-x-gbcwmd")
ACCENTS = TRAIN_ACCENTS + VAL_ACCENTS + TEST_ACCENTS
SEEN_GROUP = "training accents"  # the `group` of clips in a training accent
SPEED_RANGE = (120, 220)  # words per minute (espeak-ng -s; its default is 175)
PITCH_RANGE = (20, 80)  # espeak-ng -p, 0..99 (default 50)
TRAIN_TAKES = 2  # clips per (accent, variant, word) in the train split; held-out splits have one
HELD_OUT = 0.15  # fraction of the voice variants in val, and again in test
VOICES_ENV = "TIMM_SPACE_SPOKEN_DIGITS_VOICES"  # comma-separated variants: a small subset for tests
ACCENTS_ENV = "TIMM_SPACE_SPOKEN_DIGITS_ACCENTS"  # comma-separated accents: a subset for tests


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


def split_of(accent: str, variant_split: str) -> str:
    """A clip's split: a held-out accent decides it whole, a training accent follows the variant's split."""
    return "test" if accent in TEST_ACCENTS else "val" if accent in VAL_ACCENTS else variant_split


def draw(accent: str, variant: str, word: int, take: int) -> tuple[int, int]:
    """(speed, pitch) of one clip: uniform in SPEED_RANGE × PITCH_RANGE from a hash (the same on every machine)."""
    h = hashlib.sha256(f"{accent}|{variant}|{word}|{take}".encode()).digest()
    speed = SPEED_RANGE[0] + int.from_bytes(h[:4], "big") % (SPEED_RANGE[1] - SPEED_RANGE[0] + 1)
    pitch = PITCH_RANGE[0] + int.from_bytes(h[4:8], "big") % (PITCH_RANGE[1] - PITCH_RANGE[0] + 1)
    return speed, pitch


def speak(word: str, variant: str, speed: int, pitch: int, accent: str = "en-us") -> bytes:
    """One utterance as 16-bit mono WAV bytes at espeak-ng's 22,050 Hz."""
    with tempfile.TemporaryDirectory() as tmp:  # -w writes a complete header (--stdout streams one without sizes)
        path = Path(tmp) / "clip.wav"
        subprocess.run([_espeak(), "-v", f"{accent}+{variant}", "-s", str(speed), "-p", str(pitch),
                        "-w", str(path), word], capture_output=True, check=True, timeout=60)
        return path.read_bytes()


def jobs(accents: list[str], voices: list[str]) -> list[dict]:
    """Every clip to synthesize, in a fixed order, with its split and group."""
    by_voice = split_by_voice(voices)
    rows = []
    for accent in accents:
        group = SEEN_GROUP if accent in TRAIN_ACCENTS else accent
        for voice in voices:
            split = split_of(accent, by_voice[voice])
            for word in range(len(DIGITS)):
                for take in range(TRAIN_TAKES if split == "train" else 1):
                    speed, pitch = draw(accent, voice, word, take)
                    rows.append({"label": word, "voice": voice, "accent": accent, "speed": speed,
                                 "pitch": pitch, "group": group, "split": split})
    return rows


def build(target: Path, accents: list[str], voices: list[str]) -> None:
    """Synthesize every clip (parallel espeak-ng processes, progress bar) and save the DatasetDict as Arrow."""
    import datasets
    from tqdm.auto import tqdm

    todo = jobs(accents, voices)
    say = lambda j: speak(DIGITS[j["label"]], j["voice"], j["speed"], j["pitch"], j["accent"])  # noqa: E731
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:  # each job is one subprocess
        wavs = list(tqdm(pool.map(say, todo), total=len(todo), desc="espeak-ng spoken digits", unit="clip"))
    features = datasets.Features({"audio": datasets.Audio(), "label": datasets.ClassLabel(names=DIGITS),
                                  "voice": datasets.Value("string"), "accent": datasets.Value("string"),
                                  "speed": datasets.Value("int32"), "pitch": datasets.Value("int32"),
                                  "group": datasets.Value("string")})
    splits = {}
    for name in ("train", "val", "test"):
        rows = [(j, w) for j, w in zip(todo, wavs, strict=True) if j["split"] == name]
        if not rows:
            continue
        columns = {key: [j[key] for j, _ in rows] for key in features if key != "audio"}
        columns["audio"] = [{"bytes": w, "path": f"{DIGITS[j['label']]}_{j['accent']}_{j['voice']}_{j['speed']}_"
                                                 f"{j['pitch']}.wav"} for j, w in rows]
        splits[name] = datasets.Dataset.from_dict(columns, features=features)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.DatasetDict(splits).save_to_disk(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _subset(env: str, known: list[str] | tuple[str, ...]) -> list[str]:
    """The names listed in $env (all of `known` when unset); unknown names are a UserError."""
    wanted = [v.strip() for v in os.environ.get(env, "").split(",") if v.strip()]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise UserError(f"{env}: unknown name(s) {unknown}; known: {list(known)[:20]} …")
    return sorted(wanted) or list(known)


def chosen_voices() -> list[str]:
    """The voice variants to synthesize: $TIMM_SPACE_SPOKEN_DIGITS_VOICES if set (tests), else every variant."""
    return _subset(VOICES_ENV, list_variants())


def chosen_accents() -> list[str]:
    """The accents to synthesize: $TIMM_SPACE_SPOKEN_DIGITS_ACCENTS if set (tests), else all seven."""
    return [a for a in ACCENTS if a in _subset(ACCENTS_ENV, ACCENTS)]


def cache_path(accents: list[str], voices: list[str]) -> Path:
    """The Arrow cache dir for this accent and voice set and these settings (another set never overwrites it)."""
    key = repr((accents, voices, DIGITS, TRAIN_ACCENTS, VAL_ACCENTS, TEST_ACCENTS, SPEED_RANGE, PITCH_RANGE,
                TRAIN_TAKES, HELD_OUT)).encode()
    return cache_dir("datasets") / f"spoken-digits-{VERSION}-{hashlib.sha256(key).hexdigest()[:10]}"


def load_spoken_digits():
    """The spoken-digits DatasetDict (train/val/test by voice and accent), synthesizing it on first use."""
    import datasets

    accents, voices = chosen_accents(), chosen_voices()
    target = cache_path(accents, voices)
    if not (target / "dataset_dict.json").exists():
        print(f"synthesizing spoken-digits ({len(accents)} accents × {len(voices)} voices) into {target} "
              "(one time) ...", flush=True)
        build(target, accents, voices)
    return datasets.load_from_disk(str(target))


def main() -> None:
    """`python -m trainer.data.builtin.spoken_digits`: build (or find) the cache and print its splits."""
    dd = load_spoken_digits()
    for name, ds in dd.items():
        column = list(ds["group"])
        groups = {g: column.count(g) for g in sorted(set(column))}
        print(f"{name}: {len(ds)} clips, {len(set(ds['voice']))} voices, accents {sorted(set(ds['accent']))}, "
              f"groups {groups}", flush=True)
    print("in", cache_path(chosen_accents(), chosen_voices()), flush=True)


if __name__ == "__main__":
    exit_on_user_error(main)
