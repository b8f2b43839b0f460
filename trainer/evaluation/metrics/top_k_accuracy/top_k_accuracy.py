"""Top-k accuracy from per-class scores (logits or probabilities), with scikit-learn's tie rule."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import top_k_accuracy_score

_DESCRIPTION = (
    "Fraction of samples whose true class is among the k highest-scored classes. k is clipped to the "
    "number of classes. Ties are broken as in scikit-learn's top_k_accuracy_score: among equal scores the "
    "class with the higher index ranks first."
)
_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""
_KWARGS = """
Args:
    scores (`list` of `list` of `float`): logits or probabilities, one row of num_classes scores per sample.
    references (`list` of `int`): true class ids in [0, num_classes).
    k (`int`, defaults to 5): how many top-scored classes count as a hit; clipped to [1, num_classes].
Returns:
    {"top{k}_accuracy": float} named with the effective (clipped) k, e.g. "top5_accuracy".
Examples:
    >>> metric = load_metric("top_k_accuracy")
    >>> metric.compute(scores=[[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]], references=[2, 2], k=2)
    {'top2_accuracy': 0.5}
"""


def _as_arrays(scores: list[list[float]], references: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Scores as an (n, C) float64 array and ids as int64, after checking shapes and id range."""
    y = np.asarray(references, dtype=np.int64)
    if y.size == 0:
        raise ValueError("top_k_accuracy needs at least one sample")
    if len({len(row) for row in scores}) != 1:
        raise ValueError("every row of scores must have the same number of classes")
    s = np.asarray(scores, dtype=np.float64)
    if y.min() < 0 or y.max() >= s.shape[1]:
        raise ValueError(f"references must lie in [0, {s.shape[1]}), got [{y.min()}, {y.max()}]")
    return s, y


def _top_k(s: np.ndarray, y: np.ndarray, k: int) -> float:
    """Top-k accuracy for 1 <= k <= C, identical to sklearn's top_k_accuracy_score on (n, C) scores."""
    n_classes = s.shape[1]
    if k >= n_classes:
        return 1.0  # every class is in the top k (sklearn would warn that the score is meaningless)
    if n_classes == 2:
        # sklearn treats 2 classes as binary and wants 1-D scores; with k == 1 this is the argmax with
        # ties going to the higher index, exactly as its multi-class branch ranks them
        return float(np.mean((s[:, 1] >= s[:, 0]).astype(np.int64) == y))
    # scikit-learn does the ranking (stable sort; on ties the higher class index ranks first)
    return float(top_k_accuracy_score(y, s, k=k, labels=np.arange(n_classes)))


class TopKAccuracy(evaluate.Metric):
    """Fraction of samples whose true class is among the k highest scores (scikit-learn inside)."""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its inputs: a row of class scores and a true class id per sample."""
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "scores": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.top_k_accuracy_score.html"
            ],
        )

    def _compute(self, scores: list[list[float]], references: list[int], k: int = 5) -> dict:
        """{"top{k}_accuracy": value} with k clipped to the number of classes."""
        s, y = _as_arrays(scores, references)
        k = max(1, min(int(k), s.shape[1]))
        return {f"top{k}_accuracy": _top_k(s, y, k)}
