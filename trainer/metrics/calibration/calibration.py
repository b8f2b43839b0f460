"""Calibration: expected/maximum calibration error (top-1, equal-width bins), NLL, Brier, reliability bins."""

import datasets
import evaluate
import numpy as np

_KWARGS = """
Args:
    probabilities (list of list of float): class probabilities, one row per sample (rows sum to 1).
    references (list of int): true class ids.
    n_bins (int): equal-width confidence bins over [0, 1].
Returns:
    ece, mce, nll, brier, and reliability = {bin_lower, bin_upper, confidence, accuracy, count}
    (empty bins have count 0 and confidence/accuracy null).
"""


class Calibration(evaluate.Metric):
    """Guo et al. 2017 ECE/MCE with equal-width bins; sklearn has no multi-class ECE, so it is written here."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Calibration of top-1 confidence.", citation="Guo et al., On Calibration of Modern "
            "Neural Networks, ICML 2017.", inputs_description=_KWARGS,
            features=datasets.Features({"probabilities": datasets.Sequence(datasets.Value("float32")),
                                        "references": datasets.Value("int64")}))

    def _compute(self, probabilities, references, n_bins: int = 15) -> dict:
        p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(references)
        conf, pred = p.max(axis=1), p.argmax(axis=1)
        correct = (pred == y).astype(np.float64)
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)  # (lo, hi] bins, 0 in first
        ece, mce, rel = 0.0, 0.0, {"bin_lower": edges[:-1].tolist(), "bin_upper": edges[1:].tolist(),
                                   "confidence": [], "accuracy": [], "count": []}
        for b in range(n_bins):
            mask = bins == b
            n = int(mask.sum())
            rel["count"].append(n)
            if n == 0:
                rel["confidence"].append(None)
                rel["accuracy"].append(None)
                continue
            c, a = float(conf[mask].mean()), float(correct[mask].mean())
            rel["confidence"].append(c)
            rel["accuracy"].append(a)
            ece += n / len(y) * abs(a - c)
            mce = max(mce, abs(a - c))
        onehot = np.eye(p.shape[1])[y]
        nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())
        brier = float(((p - onehot) ** 2).sum(axis=1).mean())
        return {"ece": float(ece), "mce": float(mce), "nll": nll, "brier": brier, "reliability": rel}
