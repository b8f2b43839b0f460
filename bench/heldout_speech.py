"""Score a spoken-digits checkpoint on speech from another synthesizer: Debian's flite, never seen in training.

espeak-ng (formant synthesis) makes all of the built-in data; flite (diphone/cluster-unit voices kal, kal16, awb,
rms, slt) is a different engine with different voices. Each voice says "zero".."nine" at six speaking rates
(duration_stretch 0.75–1.3): 5 × 10 × 6 = 300 clips, saved with `save_to_disk` and scored by trainer/validate.py
with `--group-column voice` (accuracy per flite voice). Needs `apt-get install flite`.

    python bench/heldout_speech.py [--checkpoint outputs/spoken-digits] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bench.report import save_result  # noqa: E402
from trainer.data.builtin.spoken_digits import DIGITS  # noqa: E402

VOICES = ("kal", "kal16", "awb", "rms", "slt")  # flite -lv, without the limited-domain awb_time
STRETCH = (0.75, 0.85, 1.0, 1.1, 1.2, 1.3)


def synthesize(root: Path) -> Path:
    """The flite clips as a DatasetDict({"test"}) with ClassLabel(DIGITS) and a voice column."""
    import datasets

    exe = shutil.which("flite")
    if exe is None:
        raise SystemExit("needs flite: `apt-get install flite`.")
    rows = {"audio": [], "label": [], "voice": [], "stretch": []}
    for voice in VOICES:
        for label, word in enumerate(DIGITS):
            for stretch in STRETCH:
                path = root / f"{voice}_{word}_{stretch}.wav"
                subprocess.run([exe, "-voice", voice, "--setf", f"duration_stretch={stretch}", "-t", word,
                                "-o", str(path)], check=True, capture_output=True, timeout=60)
                rows["audio"].append({"bytes": path.read_bytes(), "path": path.name})
                rows["label"].append(label)
                rows["voice"].append(voice)
                rows["stretch"].append(stretch)
    features = datasets.Features({"audio": datasets.Audio(), "label": datasets.ClassLabel(names=DIGITS),
                                  "voice": datasets.Value("string"), "stretch": datasets.Value("float32")})
    out = root / "flite-digits"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(out))
    return out


def main() -> None:
    """Synthesize, run trainer/validate.py on the checkpoint, write bench/results/heldout_speech_<date>.json."""
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    p.add_argument("--checkpoint", default=str(REPO / "outputs" / "spoken-digits"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()
    version = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        data = synthesize(Path(tmp))
        metrics_dir = Path(tmp) / "eval"
        subprocess.run([sys.executable, str(REPO / "trainer" / "validate.py"), "--checkpoint", args.checkpoint,
                        "--dataset", str(data), "--split", "test", "--group-column", "voice",
                        "--output-dir", str(metrics_dir)], check=True)
        metrics = json.loads((metrics_dir / "metrics.json").read_text())
        groups = json.loads((metrics_dir / "groups.json").read_text())["test"]
    result = {"date": date.today().isoformat(), "command": "python bench/heldout_speech.py", "flite": version,
              "checkpoint": Path(args.checkpoint).name, "clips": metrics["num_samples"],
              "accuracy": metrics["accuracy"], "per_voice": {v: round(g["accuracy"], 4) for v, g in groups.items()},
              "ece": metrics.get("ece_calibrated")}
    save_result(result, args.out, "heldout_speech")


if __name__ == "__main__":
    main()
