"""--time-budget: the one planner of a run's wall time. It measures every phase of the command, gives the LR range
test a bounded share, plans the optimizer steps that fit what is left (training, one validation per epoch, the
final evaluation with its TTA views, the writing), stretches the LR schedule over exactly those steps and re-plans
as the real costs are measured.

Nothing in a plan is a constant measured on another machine: the phases before training are timed as they happen,
the training step from the steps themselves (the warm-up step excluded), evaluation from a mini-evaluation through
the validation data's own collate and preprocessing, and the writing from a rehearsal of its slowest pieces. The
deadline guard only acts on a plan made from those measurements. The loop calls the Pacer at three points: before
each batch (`signal`), on the signal every rank shares (`follow`) and after each epoch (`after_epoch`). A resumed run
keeps the schedule its state saved (`take_plan`) until this process has measured and planned again.

Neither timm nor Accelerate plans by wall time (timm's train.py and the transformers Trainer take epochs or max
steps; Ultralytics has a `time` argument that re-plans epochs after each one); this module does the same for steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer.hardware import usable_cores

# The phases of a command, in order; a phase that did not run is left out of the table.
PHASES = ("import", "data", "preflight", "decode_cache", "linear_probe", "lr_choice", "training", "final_evaluation",
          "writing")
PHASE_NAMES = {"import": "import + start-up", "data": "data + choices", "decode_cache": "model + decode cache",
               "linear_probe": "linear probe", "lr_choice": "LR choice", "final_evaluation": "final evaluation"}
FIRST_PLAN_AFTER_S = 3.0  # time at least this long (after the warm-up step) before the first plan…
FIRST_PLAN_MIN_STEPS = 3  # …over at least this many steps…
FIRST_PLAN_MAX_STEPS = 30  # …or plan after this many steps, whichever comes first
FIRST_PLAN_SHARE = 0.02  # steps so slow that 3 of them are a big part of the budget: plan after one timed step
# Re-plan within an epoch too, every tenth of the part's budget but at most every 30 s: the first steps run slower
# than the rest, and a run shorter than an epoch has no validation to re-plan after.
REPLAN_SHARE, REPLAN_MIN_S = 0.1, 30.0
STOP_GRACE_STEPS = 2  # the deadline guard's slack beyond the plan, in optimizer steps
PROBE_BATCHES = 3  # evaluation batches of the mini-evaluation; the first warms it up
LR_FIND_SHARE = 0.12  # of the time left when it starts: what the LR range test may spend
LR_FIND_MIN_ITERS = 30  # fewer sweep steps than this give no usable curve: a known-good LR instead
LR_FIND_TIMING_STEPS = 3  # steps at the sweep's start LR that time it (the first is the warm-up)
# What the writing after the final evaluation does, counted from the code (trainer/checkpoint/write.py, samples.py,
# evaluation/predict.py): each count multiplies a cost the rehearsal timed on this machine.
WRITE_FIGURES = 2  # confusion matrix + reliability diagram
WRITE_MODEL_SAVES = 2  # the gathered state dict and model.safetensors
LATENCY_FORWARDS = 23  # measure_latency: 3 warm-up + 20 timed single-input forwards (+ one batch of 32)
EXPLAIN_OVERLAYS = 24  # Grad-CAM overlays of the top-loss samples (samples.TOP_LOSS_N)


def _sync(device) -> None:
    """Wait for queued GPU work, so a timed interval holds the work it launched (CUDA runs asynchronously)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def minutes(seconds: float) -> str:
    """m:ss."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class Budget:
    """The whole command's clock (started at the process start) and, with `seconds`, its time budget: the measured
    phases, the planned ones, and where the first plan came; --folds give each fold a fair share of what is left."""

    seconds: float | None
    start: float = field(default_factory=time.time)
    parts_left: int = 1
    measured: dict = field(default_factory=dict)  # phase → seconds
    planned: dict = field(default_factory=dict)  # phase → seconds, as the first plan (or the LR share) had them
    choices: list = field(default_factory=list)  # what the planner chose and why (printed, manifest, card)
    # costs measured here before the phase that uses them, the same on every rank: "train_step_s" (the defaults'
    # speed measurement at the chosen size), "eval_sample_s" (the linear probe's feature passes)
    hints: dict = field(default_factory=dict)
    first_plan_at_s: float | None = None
    stopped: dict | None = None  # {"step", "before_plan"} when the deadline guard ended training early
    last_plan: dict | None = None
    _open: dict = field(default_factory=dict)  # phase → its start, while it runs

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return time.time() - self.start

    def left(self) -> float:
        """Seconds left of the budget (inf without one)."""
        return math.inf if self.seconds is None else self.seconds - self.elapsed()

    @contextlib.contextmanager
    def phase(self, name: str):
        """Time a phase of the command (repeated phases, e.g. per fold, add up); the first one also closes
        'import', everything from the process start to here."""
        self.measured.setdefault("import", self.elapsed())
        began = self._open[name] = time.time()
        try:
            yield
        finally:
            del self._open[name]
            self.measured[name] = self.measured.get(name, 0.0) + time.time() - began

    def next_deadline(self) -> float:
        """The deadline (time.time()) of the next training part: an equal share of what is left."""
        now = time.time()
        share = max(0.0, self.start + self.seconds - now) / max(1, self.parts_left)
        self.parts_left = max(1, self.parts_left - 1)
        return now + share

    def choose(self, text: str, say=print) -> None:
        """Record and print one of the planner's choices."""
        self.choices.append(text)
        say(f"time budget: {text}", flush=True)

    def lr_find_share(self) -> float:
        """Seconds the LR range test may spend: LR_FIND_SHARE of the time left when its phase began."""
        spent = time.time() - self._open["lr_choice"]
        return LR_FIND_SHARE * max(0.0, self.left() + spent)

    def lr_find_iters(self, wanted: int, step_s: float) -> int:
        """Sweep steps of the LR range test that fit what is left of its share (LR_FIND_SHARE of the time left when
        the phase began, its timing steps already spent from it); all `wanted` without a budget, 0 when fewer than
        LR_FIND_MIN_ITERS fit."""
        if self.seconds is None:
            return wanted
        spent = time.time() - self._open["lr_choice"]
        share = self.planned["lr_choice"] = self.lr_find_share()
        fit = int((share - spent) / max(step_s, 1e-9))
        return min(wanted, fit) if fit >= LR_FIND_MIN_ITERS else 0

    def record_plan(self, plan: dict, training_so_far: float, first_of_part: bool) -> None:
        """Keep a plan; the first one of each training part (fold) adds the planned seconds of its phases still to
        come, as the measured ones add up over the parts."""
        self.last_plan = plan
        if self.first_plan_at_s is None:
            self.first_plan_at_s = round(self.elapsed(), 1)
        if first_of_part:
            for name, seconds in (("training", training_so_far + plan["train_s"]), ("final_evaluation", plan["eval_s"]),
                                  ("writing", plan["write_s"])):
                self.planned[name] = self.planned.get(name, 0.0) + seconds

    def report(self) -> dict:
        """manifest.json `time_budget`: budget, the per-phase table, the first plan's time, the last plan and the
        deadline stop (measured until this call; the end of writing is printed)."""
        now = time.time()
        measured = {k: v + (now - self._open[k] if k in self._open else 0.0) for k, v in self.measured.items()}
        measured.update({k: now - began for k, began in self._open.items() if k not in measured})
        phases = {name: {"planned_s": _round(self.planned.get(name)), "measured_s": _round(measured.get(name))}
                  for name in PHASES if name in measured or name in self.planned}
        return {"budget_s": self.seconds, "cores": usable_cores(), "phases": phases,
                "first_plan_at_s": self.first_plan_at_s, "plan": self.last_plan,
                "stopped_at_deadline": self.stopped is not None,
                "stopped_before_plan": bool(self.stopped and self.stopped["before_plan"]),
                "choices": list(self.choices), "elapsed_s": round(self.elapsed(), 1)}

    def table(self) -> list[str]:
        """The planned-vs-measured table, as printed at the end."""
        end = self.elapsed()
        lines = [f"time budget {self.seconds / 60:g} min ({self.seconds:.0f} s) on {usable_cores()} usable "
                 f"core(s): ended {end:.1f} s after the start ({100 * (end / self.seconds - 1):+.1f} %)",
                 f"  {'phase':<22}{'planned s':>10}{'measured s':>12}"]
        for name, row in self.report()["phases"].items():
            planned = "–" if row["planned_s"] is None else f"{row['planned_s']:.1f}"
            measured = "–" if row["measured_s"] is None else f"{row['measured_s']:.1f}"
            lines.append(f"  {PHASE_NAMES.get(name, name):<22}{planned:>10}{measured:>12}")
        first = "no plan was made" if self.first_plan_at_s is None else f"first plan at {self.first_plan_at_s} s"
        stop = "the deadline did not stop training" if self.stopped is None else (
            f"the deadline stopped training at step {self.stopped['step']}"
            + (" BEFORE any plan" if self.stopped["before_plan"] else ""))
        return lines + [f"  {first}; {stop}"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def training_cost(total: int, steps_done: int, step_s: float, steps_per_epoch: int, epochs_done: int,
                  val_s: float) -> float:
    """Seconds to go from `steps_done` to `total` optimizer steps: the steps, and one validation per epoch still to
    finish."""
    return (total - steps_done) * step_s + max(1, math.ceil(total / steps_per_epoch) - epochs_done) * val_s


def plan_steps(remaining_s: float, steps_done: int, step_s: float, steps_per_epoch: int, epochs_done: int,
               val_s: float, final_s: float) -> int:
    """The most total optimizer steps whose training_cost and the final evaluation fit in `remaining_s` (binary
    search: the cost grows with the steps); at least one more step."""
    spare, step_s = remaining_s - final_s, max(step_s, 1e-9)
    lo, hi = steps_done + 1, steps_done + 1 + max(0, int(spare / step_s))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fits = training_cost(mid, steps_done, step_s, steps_per_epoch, epochs_done, val_s) <= spare
        lo, hi = (mid, hi) if fits else (lo, mid - 1)
    return lo


@dataclass
class Pacer:
    """Times one training part against its deadline on rank 0's clock, plans its steps, and guards the deadline; the
    loop shares its signals with every rank."""

    deadline: float
    samples: dict  # {"val": n, "final": n}: samples per process of one validation pass and of the final evaluation
    images_per_step: int  # per process
    batches_per_step: int = 1  # --grad-accum
    eval_views: int = 1  # forward passes per sample of the final evaluation (TTA views)
    cap_steps: int | None = None  # --max-steps / --epochs given by the user: the plan never exceeds them
    warmup_epochs: float | None = None  # --warmup-epochs given by the user; else a tenth of the plan at most
    default_warmup: float = 1.0
    budget: Budget | None = None
    device: str = "cpu"
    batch_times: list = field(default_factory=list)
    epoch_end_s: float | None = None  # the last validation + saves between epochs, once one was timed
    eval_sample_s: float | None = None  # seconds per evaluated sample: the mini-evaluation, then each validation
    write_s: float | None = None  # the writing after the final evaluation, from the rehearsal
    save_s: float = 0.0  # one model save, from the rehearsal (the per-epoch state before one is timed)
    planned: bool = False
    _last: float | None = None
    _warm: bool = False  # the first timed interval (the warm-up step) was dropped
    _warmup_s: float | None = None  # …and what it took
    _planned_at: float = 0.0
    _started: float = field(default_factory=time.time)
    _train_started: float | None = None
    _applied: bool = False  # this part has taken a plan of its own (a resumed one keeps its saved one until then)

    PLAN, STOP = 1.0, 2.0

    # --- the loop's three points -------------------------------------------------------------------------------

    def signal(self) -> float:
        """Before a batch (rank 0): STOP past the deadline of a measured plan; PLAN once enough steps were timed and
        then every tenth of the budget (at least REPLAN_MIN_S apart); else 0. Never STOP before a plan."""
        _sync(self.device)
        now = time.perf_counter()
        if self._train_started is None:
            self._train_started = time.time()
        if self._last is not None:
            if self._warm:
                self.batch_times.append(now - self._last)
            else:  # the first interval is the warm-up step: allocations, caches, the loader's start
                self._warm, self._warmup_s = True, now - self._last
        self._last = now
        if self.planned:
            # the plan fills the time up to deadline - final_s(); the guard sits two steps past that line, so timing
            # jitter on the last planned steps does not cut the plan short, while a real slow-down still stops in time
            if time.time() >= self.deadline - self.final_s() + STOP_GRACE_STEPS * self.step_s():
                return self.STOP
            every = max(REPLAN_MIN_S, REPLAN_SHARE * (self.deadline - self._started))
            return self.PLAN if time.time() - self._planned_at >= every else 0.0
        n, timed = len(self.batch_times), sum(self.batch_times)
        slow = n >= 1 and timed >= FIRST_PLAN_SHARE * (self.deadline - self._started)
        enough = n >= FIRST_PLAN_MIN_STEPS and (timed >= FIRST_PLAN_AFTER_S or n >= FIRST_PLAN_MAX_STEPS)
        return self.PLAN if slow or enough else 0.0

    def follow(self, ctx, signal: float, epoch: int) -> bool:
        """Every rank, on a shared signal: stop at the deadline (True), or plan (a collective)."""
        if signal == self.STOP:
            ctx.stopped = True
            if self.budget is not None:
                self.budget.stopped = {"step": ctx.state.step, "before_plan": not self.planned}
            ctx.accelerator.print(f"time budget: the deadline is near, training stops at step {ctx.state.step}",
                                  flush=True)
            return True
        self.apply(ctx, epochs_done=epoch)
        return False

    def after_epoch(self, ctx, val_pass_s: float, epoch_end_s: float, epochs_done: int, finished: bool) -> None:
        """Every rank, after an epoch's validation pass (`val_pass_s`) and its saves (`epoch_end_s` in all, on rank
        0's clock): the measured costs replace the estimates and the rest is re-planned (a finished run is never
        reopened)."""
        if ctx.accelerator.is_main_process:
            self.epoch_end_s = epoch_end_s
            if self.samples["val"]:
                self.eval_sample_s = val_pass_s / self.samples["val"]
        self.pause()
        if not finished:
            self.apply(ctx, epochs_done=epochs_done)

    # --- measuring ----------------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Validation or saving happens between epochs: the next batch's time starts afresh."""
        self._last = None

    def step_s(self) -> float:
        """Seconds per optimizer step: the median of the recent batches (robust to a GC pause) x --grad-accum; the
        warm-up step when an epoch ended before any other was timed (a pessimistic measurement, not a guess)."""
        recent = sorted(self.batch_times[-200:]) or ([self._warmup_s] if self._warmup_s is not None else [])
        return (recent[len(recent) // 2] if recent else 0.0) * self.batches_per_step

    def probe(self, ctx) -> None:
        """Rank 0, before the first plan: the evaluation cost (a validation pass already timed, else the linear
        probe's passes, else a mini-evaluation: PROBE_BATCHES batches of the validation set through its own collate,
        preprocessing and the eval model, at the evaluation batch size, since per-sample costs differ between batch
        sizes) and a rehearsal of the writing. No collectives: the other ranks wait for the plan's broadcast."""
        model = ctx.accelerator.unwrap_model(ctx.eval_model)
        loader, batch = ctx.loaders.val, ctx.cfg.eval_batch_size or 2 * ctx.cfg.batch_size
        if self.eval_sample_s is None:
            self.eval_sample_s = self.budget.hints.get("eval_sample_s") if self.budget is not None else None
        if self.eval_sample_s is None:
            self.eval_sample_s, _ = mini_evaluation(model, loader.dataset, loader.collate_fn, batch,
                                                    ctx.loaders.eval_preprocess, self.device)
        # one input as the model takes it, batch 1: the rehearsal's single-input forward and Grad-CAM
        _, x1 = mini_evaluation(model, loader.dataset, loader.collate_fn, 1, ctx.loaders.eval_preprocess, self.device,
                                batches=1)
        rehearsal = rehearse_writing(model, x1, ctx.out, len(ctx.loaders.class_counts), self.device,
                                     explain=ctx.loaders.audio is None)
        self.save_s = rehearsal["save_s"]
        self.write_s = (WRITE_FIGURES * rehearsal["figure_s"] + WRITE_MODEL_SAVES * rehearsal["save_s"]
                        + LATENCY_FORWARDS * rehearsal["forward1_s"] + 32 * self.eval_sample_s
                        + EXPLAIN_OVERLAYS * rehearsal["explain_s"])
        self.pause()  # the probe is not step time

    def val_s(self) -> float:
        """What an epoch's end costs: as timed, else one validation pass + the best-model and state saves."""
        if self.epoch_end_s is not None:
            return self.epoch_end_s
        return self.samples["val"] * (self.eval_sample_s or 0.0) + 3 * self.save_s

    def eval_s(self) -> float:
        """The final evaluation: every val + test sample through each view."""
        return self.samples["final"] * self.eval_views * (self.eval_sample_s or 0.0)

    def final_s(self) -> float:
        """What the final evaluation and the writing will take."""
        return self.eval_s() + (self.write_s or 0.0)

    # --- planning -------------------------------------------------------------------------------------------------

    def plan(self, steps_done: int, steps_per_epoch: int, epochs_done: int) -> dict:
        """The total steps that fit the time left (capped), the warmup for them, and the numbers behind them."""
        self.planned, self._planned_at = True, time.time()
        remaining, step_s, val_s = self.deadline - time.time(), self.step_s(), self.val_s()
        total = plan_steps(remaining, steps_done, step_s, steps_per_epoch, epochs_done, val_s, self.final_s())
        if self.cap_steps is not None:
            total = min(total, self.cap_steps)
        warmup = self.warmup_epochs
        if warmup is None:  # a 1-epoch warmup would be most of a short plan
            warmup = min(self.default_warmup, 0.1 * total / steps_per_epoch)
        train_s = training_cost(total, steps_done, step_s, steps_per_epoch, epochs_done, val_s)
        return {"total_steps": total, "epochs": math.ceil(total / steps_per_epoch), "warmup_epochs": warmup,
                "step_s": round(step_s, 4), "val_s": round(val_s, 2),
                "eval_sample_s": round(self.eval_sample_s or 0.0, 6),
                "eval_s": round(self.eval_s(), 2), "write_s": round(self.write_s or 0.0, 2),
                "final_s": round(self.final_s(), 2), "train_s": round(train_s, 1), "remaining_s": round(remaining, 1),
                "epoch_s": round(steps_per_epoch * step_s + val_s, 1)}

    def apply(self, ctx, epochs_done: int) -> None:
        """Rank 0 plans the total steps from its timings, every rank takes the plan (max steps, epochs, the LR
        schedule rebuilt over exactly those steps, resumed at the current step). A collective."""
        from accelerate.utils import broadcast_object_list

        plan = [None]
        if ctx.accelerator.is_main_process:
            if self.write_s is None:  # the first plan: measure what nothing has measured yet
                self.probe(ctx)
            plan = [self.plan(ctx.state.step, ctx.steps_per_epoch, epochs_done)]
        plan = broadcast_object_list(plan)[0]
        first, self._applied = not self._applied, True
        take_plan(ctx, plan)
        if self.budget is not None and ctx.accelerator.is_main_process:
            self.budget.record_plan(plan, time.time() - (self._train_started or time.time()), first)
        if first:
            self.announce(ctx, plan)

    def announce(self, ctx, plan: dict) -> None:
        """The first plan, printed: the budget split, and what one epoch needs here when the budget buys less."""
        say, epochs = ctx.accelerator.print, plan["total_steps"] / ctx.steps_per_epoch
        if self.budget is not None and self.budget.seconds is not None:
            fixed = ", ".join(f"{PHASE_NAMES.get(k, k)} {v:.1f}" for k, v in self.budget.measured.items())
            say(f"time budget {self.budget.seconds / 60:g} min: {self.budget.elapsed():.1f} s spent before training "
                f"({fixed} s); planned: training {plan['train_s']:.1f} s, final evaluation {plan['eval_s']:.1f} s "
                f"({self.samples['final']} samples x {self.eval_views} view(s)), writing {plan['write_s']:.1f} s",
                flush=True)
        say(f"time budget: {plan['total_steps']} steps ({epochs:.2f} epochs) fit; {plan['step_s'] * 1000:.0f} ms/step, "
            f"validation {plan['val_s']:.1f} s, final evaluation + writing {plan['final_s']:.1f} s", flush=True)
        if epochs < 1 and self.cap_steps is None:
            say(f"time budget: one epoch needs {plan['epoch_s'] / 60:.1f} min on this machine "
                f"({ctx.steps_per_epoch} steps of {plan['step_s'] * 1000:.0f} ms + validation); this budget buys "
                f"{epochs:.2f} of one. A longer --time-budget (or a smaller --img-size) trains more.", flush=True)

    def postfix(self, ctx) -> dict:
        """The progress bar's budget field: when the run is planned to end against its deadline (seconds from the
        command's start)."""
        if not self.planned or ctx.state.plan is None:
            return {}
        plan, start = ctx.state.plan, self.budget.start if self.budget is not None else self._started
        left_steps = max(0, plan["total_steps"] - ctx.state.step)
        validations = max(0, plan["epochs"] - (ctx.state.epoch + 1))
        eta = time.time() + left_steps * self.step_s() + validations * self.val_s() + self.final_s()
        return {"budget": f"ETA {minutes(eta - start)}/{minutes(self.deadline - start)}"}


def take_plan(ctx, plan: dict) -> None:
    """Run by a --time-budget plan (new, or saved in a resumed state): its max steps and epochs, and the LR schedule
    rebuilt over exactly those steps at the current step."""
    from trainer.engine.optim import build_scheduler
    from trainer.flags import with_choices

    ctx.state.plan = plan
    ctx.cfg, ctx.epochs = with_choices(ctx.cfg, {"max_steps": plan["total_steps"]}), plan["epochs"]
    ctx.scheduler = build_scheduler(ctx.optimizer, ctx.cfg, ctx.steps_per_epoch, plan["warmup_epochs"])
    ctx.scheduler.step_update(ctx.state.step)  # a new timm scheduler starts its groups at the warmup LR


def mini_evaluation(model, dataset, collate_fn, batch_size: int, preprocess, device,
                    batches: int = PROBE_BATCHES) -> tuple:
    """(seconds per sample, one preprocessed input of batch 1): the first `batches` batches of `dataset` through
    `collate_fn`, `preprocess` and a no-grad forward in eval mode; the fastest batch after the first (on a CPU the
    first batches of a new shape run up to 2x slower while kernels and buffers are made, measured: the first 2.3x,
    the second 1.3x the steady cost for lite0 at 64 px)."""
    import torch

    n = min(len(dataset), batches * batch_size)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=batch_size,
                                         collate_fn=collate_fn)
    was_training, per_sample, first = model.training, [], None
    model.eval()
    with torch.no_grad():
        for x, _y, _i in loader:
            started = time.perf_counter()
            x = preprocess(x.to(device) if torch.is_tensor(x) else tuple(t.to(device) for t in x))
            model(x).float().cpu()
            _sync(device)
            per_sample.append((time.perf_counter() - started) / len(x))
            first = x[:1] if first is None else first
    model.train(was_training)
    return min(per_sample[1:] or per_sample), first


def rehearse_writing(model, x1, out, num_classes: int, device, explain: bool = True) -> dict:
    """Rank 0: time the slowest pieces of writing a checkpoint, once each, on this machine: a single-input
    forward, a Grad-CAM overlay (images), a figure rendered to PNG and the weights saved as safetensors (into a
    scratch folder of `out` that is removed)."""
    import shutil
    import tempfile

    import torch
    from safetensors.torch import save_file

    from trainer.evaluation.plots import confusion_matrix_figure, save_png

    was_training = model.training
    model.eval()
    timings = {"explain_s": 0.0}
    with torch.no_grad():
        model(x1)  # warm-up
        started = time.perf_counter()
        model(x1).cpu()
        _sync(device)
        timings["forward1_s"] = time.perf_counter() - started
    if explain:
        from trainer.evaluation.explain import gradcam

        started = time.perf_counter()
        try:
            gradcam(model, x1, 0)
        except Exception:  # noqa: BLE001 - an architecture Grad-CAM does not support writes no overlays
            pass
        timings["explain_s"] = time.perf_counter() - started
    model.train(was_training)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".rehearsal_", dir=out))
    try:
        started = time.perf_counter()
        save_png(confusion_matrix_figure([[0] * num_classes] * num_classes, [str(i) for i in range(num_classes)]),
                 scratch / "figure.png")
        timings["figure_s"] = time.perf_counter() - started
        started = time.perf_counter()
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(scratch / "weights.safetensors"))
        timings["save_s"] = time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return timings

