"""Training state without pickles (trainer/engine/portable_state.py): a round trip restores the weights, the
optimizer's moments and step counts, the RNG streams and the loop position, so training continues identically."""

from __future__ import annotations

import random

import numpy as np
import torch

from trainer.engine import portable_state


def _setup(seed: int):
    """A tiny model and AdamW optimizer with some steps taken."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt


def _steps(model, opt, n: int) -> list[float]:
    """n training steps on random data drawn from every RNG the loop uses; their losses."""
    losses = []
    for _ in range(n):
        x = torch.randn(16, 4) + float(np.random.rand()) + random.random()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_round_trip_continues_training_identically(tmp_path):
    model, opt = _setup(0)
    _steps(model, opt, 3)
    portable_state.save(tmp_path / "state", model, opt, {"step": 3, "epoch": 0, "batches_done": 3})
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == sorted(portable_state.FILES)
    assert not [p for p in (tmp_path / "state").iterdir() if p.suffix in (".pkl", ".bin", ".pt")]
    expected = _steps(model, opt, 4)

    fresh, fresh_opt = _setup(1)  # other weights, an optimizer without state, other RNG positions
    np.random.seed(7)
    random.seed(7)
    train_state = portable_state.load(tmp_path / "state", fresh, fresh_opt)
    assert train_state == {"step": 3, "epoch": 0, "batches_done": 3}
    assert _steps(fresh, fresh_opt, 4) == expected  # bit for bit: weights, moments, BN statistics, RNG


def test_optimizer_split_keeps_every_value():
    model, opt = _setup(0)
    _steps(model, opt, 2)
    state = opt.state_dict()
    tensors, plain = portable_state.split_optimizer(state)
    assert all(isinstance(v, torch.Tensor) for v in tensors.values()) and "exp_avg_sq" in str(list(tensors))
    back = portable_state.join_optimizer(tensors, plain)
    assert back["param_groups"] == state["param_groups"]
    for i, values in state["state"].items():
        assert values.keys() == back["state"][i].keys()
        assert all(torch.equal(v, back["state"][i][k]) for k, v in values.items())
