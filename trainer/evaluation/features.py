"""Frozen-backbone features and the linear head fitted on them: a timm model's pooled pre-logits features of a
dataset, computed once, and a softmax (multi-label: one sigmoid per class) head fitted on them in seconds.

This is linear probing, the first half of LP-FT (Kumar et al., 2022: fitting the head on frozen features before
fine-tuning the whole network keeps more of the pretrained features, in and out of distribution) and the cheap way
of fastai's frozen first epoch: one forward pass per sample instead of an epoch of forward + backward. Checked
first: timm has no linear-probe helper (its `forward_head(pre_logits=True)` gives the features), scikit-learn's
LogisticRegression would fit the head but not on the training device; torch's LBFGS does, full batch.
"""

from __future__ import annotations

import numpy as np
import torch

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)  # L2 strengths tried; the best on validation is kept
LBFGS_STEPS = 100


def supports_probe(model: torch.nn.Module) -> bool:
    """Whether the model's classifier is one Linear layer fed by forward_head(pre_logits=True) (timm's CNNs and
    ViTs; not heads with a conv or an MLP)."""
    return isinstance(model.get_classifier(), torch.nn.Linear)


@torch.no_grad()
def extract(model: torch.nn.Module, loader, preprocess, device, desc: str = "features") -> dict:
    """{"features": (N, D) float32, "labels", "index"} of every batch of `loader` (one process), eval mode."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    feats, labels, index = [], [], []
    for x, y, i in tqdm(loader, desc=desc, leave=False):
        x = preprocess(x.to(device) if torch.is_tensor(x) else tuple(t.to(device) for t in x))
        feats.append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu())
        labels.append(torch.as_tensor(y))
        index.append(torch.as_tensor(i))
    model.train(was_training)
    return {"features": torch.cat(feats).numpy(), "labels": torch.cat(labels).numpy(),
            "index": torch.cat(index).numpy()}


def _loss(logits: torch.Tensor, y: torch.Tensor, multi_label: bool) -> torch.Tensor:
    if multi_label:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float())
    return torch.nn.functional.cross_entropy(logits, y.long())


def fit_head(train: dict, val: dict, num_classes: int, multi_label: bool = False) -> dict:
    """The linear head (weight (C, D), bias (C,)) fitted by full-batch LBFGS on the train features, for each L2
    strength of WEIGHT_DECAYS; the one with the lowest validation loss, with its validation logits."""
    x, y = torch.as_tensor(train["features"]), torch.as_tensor(train["labels"])
    xv, yv = torch.as_tensor(val["features"]), torch.as_tensor(val["labels"])
    best = None
    for wd in WEIGHT_DECAYS:
        head, val_logits = _lbfgs_head(x, y, xv, num_classes, wd, multi_label)
        val_loss = float(_loss(val_logits, yv, multi_label))
        if best is None or val_loss < best["val_loss"]:
            best = {"weight": head.weight.detach().clone(), "bias": head.bias.detach().clone(), "weight_decay": wd,
                    "val_loss": val_loss, "val_logits": val_logits.numpy()}
    return best


def _lbfgs_head(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, num_classes: int, wd: float,
                multi_label: bool) -> tuple:
    """(Linear head, its validation logits): cross-entropy (BCE) + wd/2 ||W||², full-batch LBFGS from zeros."""
    head = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=LBFGS_STEPS, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _loss(head(x), y, multi_label) + wd * head.weight.square().sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return head, head(xv)


def stratified_rows(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Up to `per_class` row positions of each class (multi-label rows: of each class they hold), sorted."""
    rng = np.random.default_rng(seed)
    if labels.ndim == 2:
        chosen = set()
        for c in range(labels.shape[1]):
            rows = np.flatnonzero(labels[:, c] > 0)
            chosen.update(rng.permutation(rows)[:per_class].tolist())
        return np.asarray(sorted(chosen), dtype=np.int64)
    rows = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(rows)).astype(np.int64)
