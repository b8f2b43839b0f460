"""Calibration of top-1 confidence: ECE/MCE (equal-width bins), NLL, multi-class Brier, reliability bins."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import brier_score_loss, log_loss

_DESCRIPTION = (
    "Expected and maximum calibration error of the top-1 confidence over n_bins equal-width bins "
    "((i-1)/n, i/n], a confidence of exactly 0 falls in the first bin (Guo et al. 2017); negative "
    "log-likelihood; multi-class Brier score (mean over samples of the sum over classes of squared errors, "
    "range [0, 2]); and the reliability diagram bins. Rows are renormalised in float64 to absorb float32 "
    "rounding. Multi-label data (multi-hot references, independent per-class probabilities): every (sample, "
    "class) probability is one binary forecast, binned against the share of positives (the marginal multi-label "
    "ECE); NLL is the mean binary cross-entropy and Brier the mean squared error over those pairs."
)
_CITATION = """\
@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={Proceedings of the 34th International Conference on Machine Learning},
  pages={1321--1330},
  year={2017}
}
"""
_KWARGS = """
Args:
    probabilities (`list` of `list` of `float`): class probabilities, one row per sample; rows sum to 1.
    references (`list` of `int`): true class ids in [0, num_classes); or, for multi-label data, multi-hot rows
        (`list` of `list` of `int`) with probabilities of each class on its own (rows need not sum to 1).
    n_bins (`int`, defaults to 15): number of equal-width confidence bins over [0, 1].
Returns:
    ece, mce, nll, brier (floats) and reliability = {bin_lower, bin_upper, confidence, accuracy, count},
    lists of length n_bins; an empty bin has count 0 and confidence/accuracy None (JSON null), and it
    contributes nothing to ece or mce.
Examples:
    >>> metric = load_metric("calibration")
    >>> metric.compute(probabilities=[[0.75, 0.25], [0.75, 0.25]], references=[0, 1], n_bins=4)["ece"]
    0.25
"""


def _as_arrays(probabilities: list[list[float]], references: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities as an (n, C) float64 array with rows renormalised, ids as int64, after sanity checks."""
    y = np.asarray(references, dtype=np.int64)
    if y.size == 0:
        raise ValueError("calibration needs at least one sample")
    if len({len(row) for row in probabilities}) != 1:
        raise ValueError("every row of probabilities must have the same number of classes")
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[1] < 2:
        raise ValueError("calibration needs at least 2 classes")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"references must lie in [0, {p.shape[1]}), got [{y.min()}, {y.max()}]")
    sums = p.sum(axis=1)
    if p.min() < 0 or np.abs(sums - 1).max() > 1e-3:
        raise ValueError("probabilities must be non-negative rows summing to 1 (softmax the logits first)")
    return p / sums[:, None], y


def _reliability(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[float, float, dict]:
    """ECE, MCE and per-bin count / mean confidence / accuracy over equal-width bins (lo, hi]."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds (edges[b], edges[b+1]]; a confidence of exactly 0 goes to bin 0
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    full = count > 0
    mean_conf = np.divide(conf_sum, count, out=np.zeros(n_bins), where=full)
    mean_acc = np.divide(acc_sum, count, out=np.zeros(n_bins), where=full)
    gaps = np.abs(mean_acc - mean_conf)
    ece = float(np.abs(acc_sum - conf_sum).sum() / len(conf))  # sum_b |B_b|/n * |acc_b - conf_b|
    mce = float(gaps[full].max())
    rel = {
        "bin_lower": edges[:-1].tolist(),
        "bin_upper": edges[1:].tolist(),
        "confidence": [float(c) if f else None for c, f in zip(mean_conf, full, strict=True)],
        "accuracy": [float(a) if f else None for a, f in zip(mean_acc, full, strict=True)],
        "count": [int(c) for c in count],
    }
    return ece, mce, rel


class Calibration(evaluate.Metric):
    """Top-1 ECE/MCE with equal-width bins (no multi-class ECE in scikit-learn), plus its NLL and Brier."""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its inputs: a row of class probabilities and a true class id per sample."""
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=[
                datasets.Features(
                    {
                        "probabilities": datasets.Sequence(datasets.Value("float32")),
                        "references": datasets.Value("int64"),
                    }
                ),
                datasets.Features(  # multi-label: multi-hot references
                    {
                        "probabilities": datasets.Sequence(datasets.Value("float32")),
                        "references": datasets.Sequence(datasets.Value("int8")),
                    }
                ),
            ],
            reference_urls=["https://arxiv.org/abs/1706.04599"],
        )

    def _compute(self, probabilities: list[list[float]], references: list[int], n_bins: int = 15) -> dict:
        """ECE, MCE, NLL, Brier and the reliability bins of the top-1 confidence."""
        if int(n_bins) < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        if len(references) and isinstance(references[0], list | tuple | np.ndarray):
            return _multi_label(probabilities, references, int(n_bins))
        p, y = _as_arrays(probabilities, references)
        labels = np.arange(p.shape[1])
        correct = (p.argmax(axis=1) == y).astype(np.float64)
        ece, mce, rel = _reliability(p.max(axis=1), correct, int(n_bins))
        # scikit-learn for the proper scoring rules; scale_by_half=False keeps the multi-class sum (no
        # halving) when there are only 2 classes
        nll = float(log_loss(y, p, labels=labels))
        brier = float(brier_score_loss(y, p, labels=labels, scale_by_half=False))
        return {"ece": ece, "mce": mce, "nll": nll, "brier": brier, "reliability": rel}


def _multi_label(probabilities: list[list[float]], references: list[list[int]], n_bins: int) -> dict:
    """ECE, MCE, NLL, Brier and reliability bins over every (sample, class) pair as one binary forecast."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(references, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 2 or p.size == 0:
        raise ValueError(f"probabilities {p.shape} and multi-hot references {y.shape} must be equal (n, C) arrays")
    if p.min() < 0 or p.max() > 1 or not np.isin(y, (0, 1)).all():
        raise ValueError("multi-label calibration needs probabilities in [0, 1] and 0/1 references")
    conf, outcome = p.ravel(), y.ravel()
    ece, mce, rel = _reliability(conf, outcome, n_bins)
    nll = float(log_loss(outcome, conf, labels=[0, 1]))
    brier = float(brier_score_loss(outcome, conf, labels=[0, 1]))
    return {"ece": ece, "mce": mce, "nll": nll, "brier": brier, "reliability": rel}
