"""Knowing when the model does not know: an out-of-distribution score from the logits, its threshold fitted on
validation data for a target in-distribution recall, and AUROC against out-of-distribution inputs.

The score is the energy of the logits (Liu et al., 2020): E(x) = -T·logsumexp(logits / T) with T = 1, higher
for inputs unlike the training data. A multi-label model's classes are independent sigmoids: its score is the
joint energy (Wang et al., 2021), minus the sum over classes of log(1 + exp(logit)). Checked: timm, torchvision
and scikit-learn ship no OOD scores; pytorch-ood does, but one logsumexp does not justify a dependency.
"""

from __future__ import annotations

import numpy as np

SCORE = "energy"
JOINT = "joint_energy"  # multi-label models
TARGET_RECALL = 0.95  # the share of in-distribution validation inputs the threshold keeps as known
UNKNOWN = "not one of the known classes"


def energy_score(logits: np.ndarray) -> np.ndarray:
    """Energy per row of (N, C) logits: -logsumexp; higher means less like the training data."""
    z = np.asarray(logits, dtype=np.float64)
    peak = z.max(axis=1, keepdims=True)
    return -(peak[:, 0] + np.log(np.exp(z - peak).sum(axis=1)))


def joint_energy_score(logits: np.ndarray) -> np.ndarray:
    """Joint energy per row of (N, C) multi-label logits: -sum softplus; higher means less like the training data."""
    return -np.logaddexp(0.0, np.asarray(logits, dtype=np.float64)).sum(axis=1)


SCORES = {SCORE: energy_score, JOINT: joint_energy_score}


def fit_ood(val_logits: np.ndarray, recall: float = TARGET_RECALL, score: str = SCORE) -> dict:
    """The config.json `ood` block: the `score` threshold that keeps `recall` of the validation inputs as known.
    Fit it on plain (one-view) logits: the app scores the plain view also when TTA gives the label."""
    scores = SCORES[score](val_logits)
    threshold = float(np.quantile(scores, recall))
    return {"score": score, "threshold": threshold, "target_recall": recall,
            "val_recall": float(np.mean(scores <= threshold)), "val_samples": int(len(scores))}


def verdict(logits: np.ndarray, ood: dict | None) -> tuple[float, bool | None]:
    """(energy score of one row of logits, whether it is over the checkpoint's threshold; None without one)."""
    kind = (ood or {}).get("score", SCORE)
    score = float(SCORES.get(kind, energy_score)(np.asarray(logits)[None])[0])
    if not ood or kind not in SCORES:
        return score, None
    return score, score > float(ood["threshold"])


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve of the score separating out-of-distribution (positive) from in-distribution."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return float(roc_auc_score(y, np.r_[in_scores, out_scores]))
