"""--time-budget: plan a run's optimizer steps from its measured speed, so that training plus the final evaluation
end within the budget, with the LR schedule stretched over the planned steps (not cut off).

Neither timm nor Accelerate plans by wall time (timm's train.py and the transformers Trainer take epochs or max
steps; Ultralytics has a `time` argument that re-plans epochs after each one); this module does the same for steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

# Forward-only evaluation of a sample costs about a third of a training step's forward + backward + update: the
# fallback when neither a validation pass nor the probe below was timed (1/2.5, on the safe side).
EVAL_COST_RATIO = 1 / 2.5
# Latency measurement, plots, thumbnails and the checkpoint files after the final evaluation, and the exit: ~1 s for
# a tiny test model on 2 CPU cores (2026-12-02, tests/test_time_budget.py); the plan keeps this much in reserve.
WRITE_RESERVE_S = 3.0
FIRST_PLAN_AFTER_S = 3.0  # measure at least this long (after the first, warm-up step) before the first plan
FIRST_PLAN_MAX_STEPS = 30  # …or plan after this many steps, whichever comes first
# Re-plan within an epoch too, every tenth of the part's budget but at most every 30 s: the first steps run slower
# than the rest, and a run shorter than an epoch has no validation to re-plan after.
REPLAN_SHARE, REPLAN_MIN_S = 0.1, 30.0
# A timed forward is not all an evaluation costs: batches are also collated, normalised on the device and gathered.
# Measured on lite0 at 64 px (2026-12-02, 2 CPU cores): 1.1 ms per validation image vs 0.72 ms for the bare forward.
PROBE_OVERHEAD = 1.5
STOP_GRACE_STEPS = 2  # the deadline guard's slack beyond the plan, in optimizer steps


@dataclass
class Budget:
    """The whole command's time budget: started when the command started; --folds give each fold a fair share."""

    seconds: float
    start: float = field(default_factory=time.time)
    parts_left: int = 1

    def next_deadline(self) -> float:
        """The deadline (time.time()) of the next training part: an equal share of what is left."""
        now = time.time()
        share = max(0.0, self.start + self.seconds - now) / max(1, self.parts_left)
        self.parts_left = max(1, self.parts_left - 1)
        return now + share


def plan_steps(remaining_s: float, steps_done: int, step_s: float, steps_per_epoch: int, epochs_done: int,
               val_s: float, final_s: float) -> int:
    """The most total optimizer steps whose remaining steps, one validation per epoch still to finish and the final
    evaluation fit in `remaining_s` (binary search: the cost grows with the steps); at least one more step."""
    spare, step_s = remaining_s - final_s, max(step_s, 1e-9)

    def cost(total: int) -> float:
        return (total - steps_done) * step_s + max(1, math.ceil(total / steps_per_epoch) - epochs_done) * val_s

    lo, hi = steps_done + 1, steps_done + 1 + max(0, int(spare / step_s))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= spare else (lo, mid - 1)
    return lo


@dataclass
class Pacer:
    """Times the batches of one training part against its deadline (rank 0's clock; the loop shares its signals)."""

    deadline: float
    samples: dict  # {"val": n, "final": n}: samples of one validation pass and of the final evaluation
    images_per_step: int  # per process
    batches_per_step: int = 1  # --grad-accum
    eval_views: int = 1  # test-time augmentation views of the final evaluation
    cap_steps: int | None = None  # --max-steps / --epochs given by the user: the plan never exceeds them
    warmup_epochs: float | None = None  # --warmup-epochs given by the user; else a tenth of the plan at most
    default_warmup: float = 1.0
    batch_times: list = field(default_factory=list)
    val_s: float | None = None  # the last validation pass, once one was timed
    probe_s: float | None = None  # seconds per sample of a timed no-grad forward, before any validation
    planned: bool = False
    _last: float | None = None
    _planned_at: float = 0.0
    _started: float = field(default_factory=time.time)

    PLAN, STOP = 1.0, 2.0

    def signal(self) -> float:
        """Before a batch: STOP past the deadline, PLAN once enough batches were timed and then every tenth of the
        budget (at least REPLAN_MIN_S apart), else 0."""
        now = time.perf_counter()
        if self._last is not None:
            self.batch_times.append(now - self._last)
        self._last = now
        # the plan fills the time up to deadline - final_s(); the guard sits two steps past that line, so timing
        # jitter on the last planned steps does not cut the plan short, while a real slow-down still stops in time
        if self.batch_times and time.time() >= self.deadline - self.final_s() + STOP_GRACE_STEPS * self.step_s():
            return self.STOP
        if self.planned:  # refresh the plan with the steady step time
            every = max(REPLAN_MIN_S, REPLAN_SHARE * (self.deadline - self._started))
            return self.PLAN if time.time() - self._planned_at >= every else 0.0
        timed = sum(self.batch_times) >= FIRST_PLAN_AFTER_S or len(self.batch_times) >= FIRST_PLAN_MAX_STEPS
        return self.PLAN if timed else 0.0

    def probe(self, model, x) -> None:
        """Time one no-grad forward of a training batch in eval mode (rank 0's own model, no collectives), times
        PROBE_OVERHEAD: the evaluation cost per sample until a validation pass is timed."""
        import torch

        was_training = model.training
        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            self.probe_s = PROBE_OVERHEAD * (time.perf_counter() - start) / max(1, len(x))
        model.train(was_training)
        self.pause()  # the probe is not step time

    def pause(self) -> None:
        """Validation or saving happens between epochs: the next batch's time starts afresh."""
        self._last = None

    def step_s(self) -> float:
        """Seconds per optimizer step: the median of the recent batches (robust to a GC pause) x --grad-accum."""
        recent = sorted(self.batch_times[-200:])
        return (recent[len(recent) // 2] if recent else 1.0) * self.batches_per_step

    def eval_sample_s(self) -> float:
        """Seconds to evaluate one sample: from the timed validation, else the probe, else from the step time."""
        if self.val_s is not None and self.samples["val"]:
            return self.val_s / self.samples["val"]
        if self.probe_s is not None:
            return self.probe_s
        return self.step_s() / self.images_per_step * EVAL_COST_RATIO

    def final_s(self) -> float:
        """What the final evaluation and the checkpoint writing will take."""
        return self.samples["final"] * self.eval_views * self.eval_sample_s() + WRITE_RESERVE_S

    def plan(self, steps_done: int, steps_per_epoch: int, epochs_done: int) -> dict:
        """The total steps that fit the time left (capped), the warmup for them, and the numbers behind them."""
        self.planned, self._planned_at = True, time.time()
        remaining = self.deadline - time.time()
        val_s = self.eval_sample_s() * self.samples["val"]
        total = plan_steps(remaining, steps_done, self.step_s(), steps_per_epoch, epochs_done, val_s, self.final_s())
        if self.cap_steps is not None:
            total = min(total, self.cap_steps)
        warmup = self.warmup_epochs
        if warmup is None:  # a 1-epoch warmup would be most of a short plan
            warmup = min(self.default_warmup, 0.1 * total / steps_per_epoch)
        return {"total_steps": total, "epochs": math.ceil(total / steps_per_epoch), "warmup_epochs": warmup,
                "step_s": round(self.step_s(), 4), "val_s": round(val_s, 2), "final_s": round(self.final_s(), 2),
                "remaining_s": round(remaining, 1)}
