"""Top-k accuracy from per-class scores."""

import datasets
import evaluate
import numpy as np

_KWARGS = """
Args:
    scores (list of list of float): logits or probabilities, one row per sample.
    references (list of int): true class ids.
    k (int): how many top-scored classes count as a hit (clipped to the number of classes).
Returns:
    {"top{k}_accuracy": float} with the effective k.
"""


class TopKAccuracy(evaluate.Metric):
    """Fraction of samples whose true class is among the k highest scores."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Top-k accuracy.", citation="", inputs_description=_KWARGS,
            features=datasets.Features({"scores": datasets.Sequence(datasets.Value("float32")),
                                        "references": datasets.Value("int64")}))

    def _compute(self, scores, references, k: int = 5) -> dict:
        s, y = np.asarray(scores, dtype=np.float64), np.asarray(references)
        k = max(1, min(k, s.shape[1]))
        # a hit when fewer than k classes score strictly higher than the true class (ties favour the truth)
        higher = (s > s[np.arange(len(y)), y][:, None]).sum(axis=1)
        return {f"top{k}_accuracy": float((higher < k).mean()) if len(y) else 0.0}
