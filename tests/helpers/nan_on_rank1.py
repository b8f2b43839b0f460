"""`accelerate launch tests/helpers/nan_on_rank1.py <train.py flags>`: training where only rank 1's loss turns NaN at
its third step (as one bad batch would), to show that every rank stops with the message instead of hanging."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.engine.loop as loop  # noqa: E402
from trainer.errors import exit_on_user_error  # noqa: E402
from trainer.train import main  # noqa: E402

_check, _calls = loop.check_step, [0]


def _poisoned(accelerator, loss, signal=0.0):
    _calls[0] += 1
    if accelerator.process_index == 1 and _calls[0] >= 3:
        loss = loss * float("nan")
    return _check(accelerator, loss, signal)


loop.check_step = _poisoned
exit_on_user_error(lambda: main(sys.argv[1:]))
