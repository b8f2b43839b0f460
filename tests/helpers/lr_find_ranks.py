"""`accelerate launch tests/helpers/lr_find_ranks.py <train.py flags> --lr-find`: the LR range test, each rank also
writing <out>/lr_find_rank<i>.json with its own loss per sweep step (before the all-reduce), the reduced value
it went on with, and the smoothed curve it returned — to show that every rank follows one curve, their mean."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.engine.lr_find as lr_find  # noqa: E402
from trainer.errors import exit_on_user_error  # noqa: E402
from trainer.train import main  # noqa: E402

_step, _sweep = lr_find._step, lr_find.sweep
local, reduced = [], []


def _recording_step(accelerator, model, optimizer, batch, preprocess, criterion, lr):
    def recorded(logits, target):
        loss = criterion(logits, target)
        local.append(float(loss.detach()))
        return loss

    value = _step(accelerator, model, optimizer, batch, preprocess, recorded, lr)
    reduced.append(float(value))
    return value


def _recording_sweep(accelerator, *args):
    lrs, losses = _sweep(accelerator, *args)
    out = Path(sys.argv[sys.argv.index("--output-dir") + 1])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"lr_find_rank{accelerator.process_index}.json").write_text(json.dumps(
        {"num_processes": accelerator.num_processes, "local": local, "reduced": reduced, "losses": losses}))
    return lrs, losses


lr_find._step, lr_find.sweep = _recording_step, _recording_sweep
exit_on_user_error(lambda: main(sys.argv[1:]))
