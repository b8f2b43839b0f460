"""The Accelerate training loop: epochs, fine-tune phases, EMA, early stopping, save/resume."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from trainer.checkpoint.contract import STATE_DIR
from trainer.config import TrainConfig
from trainer.data.loaders import Loaders
from trainer.engine.optim import set_phase
from trainer.errors import UserError


@dataclass
class TrainState:
    """Progress that must survive a restart; saved by Accelerate's save_state with the weights."""

    epoch: int = -1  # last finished epoch
    step: int = 0  # optimizer steps taken
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list = field(default_factory=list)
    # mid-epoch position (--checkpointing-steps): batches of the unfinished epoch already trained on, and their
    # loss sum, so a resumed epoch skips exactly those batches and reports the same mean loss
    batches_done: int = 0
    epoch_loss_sum: float = 0.0
    plan: dict | None = None  # --time-budget: the latest plan (a resumed run keeps its schedule)

    def state_dict(self) -> dict:
        """For Accelerate's register_for_checkpointing."""
        return asdict(self)

    def load_state_dict(self, d: dict) -> None:
        """For Accelerate's load_state."""
        self.__dict__.update(d)


# What Accelerate's save_state writes for our loop (safe_serialization=True), and nothing else: resuming unpickles
# the .pkl files (RNG states, our TrainState), so a folder is checked against this list before anything is loaded.
STATE_FILES = re.compile(r"(model(_\d+)?\.safetensors|optimizer(_\d+)?\.bin|scheduler(_\d+)?\.bin|"
                         r"sampler(_\d+)?\.bin|scaler\.pt|random_states_\d+\.pkl|custom_checkpoint_\d+\.pkl)")


STATE_NAME = re.compile(r"(epoch|step)_\d+")  # state/epoch_E after an epoch, state/step_S mid-epoch


def check_state_dir(path: Path, flag: str) -> None:
    """--resume DIR must be <output dir>/state/epoch_N (or step_N) as our loop writes it; refuse anything else."""
    if not path.is_dir() or path.parent.name != STATE_DIR or not STATE_NAME.fullmatch(path.name):
        raise UserError(f"--resume {flag}: not a state dir of ours (expected <output-dir>/{STATE_DIR}/epoch_N or "
                        "step_N); use --resume auto to continue the run in --output-dir.")
    names = {p.name for p in path.iterdir()}
    foreign = sorted(n for n in names if not STATE_FILES.fullmatch(n))
    if foreign or not {"model.safetensors", "custom_checkpoint_0.pkl"} <= names:
        raise UserError(f"--resume {flag}: this folder does not hold the files our training loop saves "
                        f"(unexpected: {foreign[:5]}; required: model.safetensors, custom_checkpoint_0.pkl). "
                        "Nothing was loaded from it.")


def find_resume(out: Path, resume: str | None) -> Path | None:
    """The state dir to resume from: 'auto' → latest in out/state (None if there is none), or a path."""
    if not resume:
        return None
    if resume != "auto":
        path = Path(resume).expanduser()
        check_state_dir(path, resume)
        return path
    # the newest: a save removes the older dirs once it is in place, so more than one means a kill in between
    states = sorted((p for p in (out / STATE_DIR).glob("*_*") if STATE_NAME.fullmatch(p.name)),
                    key=lambda p: p.stat().st_mtime_ns)
    if states:
        check_state_dir(states[-1], f"auto ({states[-1]})")
    return states[-1] if states else None


def check_step(accelerator, loss: torch.Tensor, signal: float = 0.0) -> tuple[bool, float]:
    """(whether the loss is finite on every process, rank 0's --time-budget signal): one all-reduce of both, so a
    NaN on one rank stops all, and all follow rank 0's clock."""
    flags = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0,
                          signal if accelerator.is_main_process else 0.0], device=loss.device)
    if accelerator.num_processes > 1:
        flags = accelerator.reduce(flags, reduction="sum")
    return bool(flags[0].item() == 0), float(flags[1].item())


def save_epoch_state(accelerator, out: Path, epoch: int, name: str | None = None) -> Path:
    """save_state into a temp dir, rename it into place as state/epoch_E (or `name`, e.g. step_S), then remove the
    older state dirs (a kill before that leaves them, and --resume auto takes the newest)."""
    root = out / STATE_DIR
    name = name or f"epoch_{epoch}"
    tmp, final = root / f".tmp_{name}", root / name
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in root.glob("*_*"):
            if old != final and STATE_NAME.fullmatch(old.name):
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_best(accelerator, eval_model: torch.nn.Module, out: Path) -> None:
    """Best-so-far weights (EMA when on), gathered on every process and saved once, atomically."""
    from safetensors.torch import save_file

    # every rank calls it: under FSDP or DeepSpeed ZeRO-3 gathering the full weights is a collective, and rank 0's
    # own unwrap_model(...).state_dict() would hold only its shard
    full = accelerator.get_state_dict(eval_model)
    if accelerator.is_main_process:
        sd = {k: v.detach().cpu().contiguous() for k, v in full.items()}
        path = out / STATE_DIR / "best_model.safetensors"
        save_file(sd, str(path) + ".tmp")
        Path(str(path) + ".tmp").replace(path)
    accelerator.wait_for_everyone()


def improved(cfg: TrainConfig, value: float, best: float | None) -> bool:
    """Whether `value` beats `best` for --metric (lower is better only for loss)."""
    if best is None:
        return True
    return value < best if cfg.metric == "loss" else value > best


def train_one_epoch(ctx: "LoopContext", epoch: int) -> float:
    """One pass over the training data; returns the mean training loss."""
    from tqdm.auto import tqdm

    accelerator, cfg, st = ctx.accelerator, ctx.cfg, ctx.state
    ctx.model.train()
    set_phase(ctx.optimizer, cfg, epoch)
    ctx.loaders.train.set_epoch(epoch)
    loader = ctx.loaders.train
    if st.batches_done:  # resumed from a mid-epoch state: this epoch's order, minus the batches already trained on
        own = getattr(loader, "skip_first_batches", None)  # a StreamLoader skips by itself (a stream cannot seek)
        loader = own(st.batches_done) if own else accelerator.skip_first_batches(loader, st.batches_done)
        loader.set_epoch(epoch)  # a new loader object: it must shuffle as this epoch, not as its first
    total, count = st.epoch_loss_sum, st.batches_done
    meter = Throughput(cfg.batch_size * cfg.grad_accum * accelerator.num_processes)  # images per optimizer step
    try:
        length = st.batches_done + len(loader)
    except TypeError:  # a streamed dataset has no length
        length = None
    batches = _resumed_batches(loader) if st.batches_done else loader
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{ctx.epochs}", disable=not accelerator.is_main_process,
               leave=False, initial=st.batches_done, total=length)
    pacer = ctx.pacer if accelerator.is_main_process else None  # --time-budget runs on rank 0's clock
    if pacer is not None:
        pacer.pause()  # validation and saving since the last step are not step time
    for x, y, _ in bar:
        signal = pacer.signal() if pacer is not None else 0.0
        with accelerator.accumulate(ctx.model):
            x = ctx.loaders.train_preprocess(x)
            if ctx.mixup is not None:
                x, y = ctx.mixup(x, y)
            with accelerator.autocast():
                loss = ctx.criterion(ctx.model(x), y)
            finite, signal = check_step(accelerator, loss, signal)
            if not finite:  # every rank stops together: none waits in a collective
                raise UserError(f"loss became non-finite at step {st.step} (epoch {epoch + 1}) on "
                                f"{'a process' if accelerator.num_processes > 1 else 'this run'}; the last good state "
                                f"is in {ctx.out / STATE_DIR}. Lower --lr or set --clip-grad, then --resume auto.")
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.optim.clip_grad:
                accelerator.clip_grad_norm_(ctx.model.parameters(), cfg.optim.clip_grad)
            ctx.optimizer.step()
            ctx.optimizer.zero_grad(set_to_none=True)
        total, count = total + loss.item(), count + 1
        if accelerator.sync_gradients:
            after_step(ctx, loss, meter, epoch, (count, total))
        if signal:
            if ctx.pacer.follow(ctx, signal, epoch):
                break
            bar.set_description(f"epoch {epoch + 1}/{ctx.epochs}")  # the plan sets the epochs
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{ctx.optimizer.param_groups[0]['lr']:.2e}",
                        **(pacer.postfix(ctx) if pacer is not None else {}))
        if ctx.cfg.max_steps is not None and st.step >= ctx.cfg.max_steps:  # ctx.cfg: a plan may set it on the way
            break
    ctx.last_rate = meter.epoch_rate()
    st.batches_done, st.epoch_loss_sum = 0, 0.0  # the epoch is complete: its epoch_E state starts the next afresh
    return total / max(count, 1)


def after_step(ctx: "LoopContext", loss: torch.Tensor, meter: "Throughput", epoch: int, done: tuple) -> None:
    """After an optimizer step: schedule, EMA, throughput, the loss line, and --checkpointing-steps state (with
    `done` = (batches, loss sum) of this epoch so far, where a resume picks up)."""
    accelerator, cfg, st = ctx.accelerator, ctx.cfg, ctx.state
    st.step += 1
    ctx.scheduler.step_update(st.step)
    if ctx.ema is not None:
        ctx.ema.update(accelerator.unwrap_model(ctx.model), step=st.step)
    meter.step()
    if st.step % cfg.log_interval == 0:
        row = {"loss": loss.item(), "lr": ctx.optimizer.param_groups[0]["lr"], "img_per_s": meter.interval_rate()}
        accelerator.print(f"step {st.step} loss {row['loss']:.4f} lr {row['lr']:.2e} {row['img_per_s']:.1f} img/s",
                          flush=True)
        accelerator.log(row, step=st.step)  # --log-with: rank 0's batch loss, as printed
    if cfg.checkpointing_steps and st.step % cfg.checkpointing_steps == 0:
        st.batches_done, st.epoch_loss_sum = done
        path = save_epoch_state(accelerator, ctx.out, epoch, name=f"step_{st.step}")
        accelerator.print(f"saved state {path} (step {st.step}, epoch {epoch + 1})", flush=True)


def _resumed_batches(loader):
    """The batches of a loader resumed mid-epoch, with the global torch RNG as the saved state left it.

    Starting an iterator draws a seed from the global torch RNG; the uninterrupted run drew it at the epoch's
    start, before the state was saved, so here it is drawn and then undone. With on-device augmentation (the
    decode cache) the resumed run then continues bit for bit (tests/test_resume.py); augmentation inside the loader
    draws as the batches are fetched, one batch ahead, and only the data position is exact there.
    """
    import itertools

    rng = torch.get_rng_state()
    iterator = iter(loader)
    first = next(iterator, None)
    torch.set_rng_state(rng)
    return itertools.chain([] if first is None else [first], iterator)


class Throughput:
    """Training images/s over all processes, per log interval and per epoch (first step excluded: warm-up)."""

    def __init__(self, images_per_step: int) -> None:
        self.images_per_step = images_per_step
        self.steps = self.mark_steps = 0
        self.start = self.mark = None

    def step(self) -> None:
        """Count one optimizer step; the clock starts after the first."""
        now = time.perf_counter()
        if self.start is None:
            self.start = self.mark = now
        else:
            self.steps += 1
        self.now = now

    def interval_rate(self) -> float:
        """img/s since the previous call."""
        dt = self.now - self.mark
        rate = (self.steps - self.mark_steps) * self.images_per_step / dt if dt > 0 else 0.0
        self.mark, self.mark_steps = self.now, self.steps
        return rate

    def epoch_rate(self) -> float | None:
        """img/s over the epoch after its first step; None for a one-step epoch."""
        if not self.steps:
            return None
        return self.steps * self.images_per_step / (self.now - self.start)


@dataclass
class LoopContext:
    """The prepared objects one training run shares."""

    cfg: TrainConfig
    accelerator: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    loaders: Loaders
    criterion: Callable
    mixup: Callable | None
    ema: torch.nn.Module | None
    state: TrainState
    epochs: int
    out: Path
    last_rate: float | None = None  # training img/s of the last epoch
    steps_per_epoch: int = 1  # optimizer steps per epoch and process
    pacer: object | None = None  # --time-budget: trainer.engine.budget.Pacer
    stopped: bool = False  # the time budget's deadline ended training early
    val_pass_s: float = 0.0  # seconds of the last validation pass (predictions only), on this process's clock
    probe: dict | None = None  # --linear-probe: its validation metrics and rows (trainer/engine/linear_probe.py)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights we evaluate and ship: the EMA when on."""
        return self.ema.module if self.ema is not None else self.model


def push_training_state(ctx: LoopContext) -> None:
    """--hub-push-state: this epoch's pickle-free state (and the best weights so far) to the state branch, from
    rank 0; a failed push is reported and training goes on (the local state/ is intact)."""
    from trainer.engine import portable_state
    from trainer.hub.state import push_state

    accelerator, hub = ctx.accelerator, ctx.cfg.hub
    if accelerator.is_main_process:
        folder = ctx.out / STATE_DIR / "hub"
        shutil.rmtree(folder, ignore_errors=True)
        portable_state.save(folder, accelerator.unwrap_model(ctx.model), ctx.optimizer, ctx.state.state_dict(),
                            ctx.ema)
        best = ctx.out / STATE_DIR / "best_model.safetensors"
        if best.is_file():
            shutil.copy2(best, folder / best.name)
        try:
            info = push_state(folder, hub.hub_model_id, hub.hub_token, hub.hub_state_branch, ctx.state.step)
            accelerator.print(f"pushed training state (step {ctx.state.step}) to {hub.hub_model_id}@"
                              f"{hub.hub_state_branch} ({info.oid[:12]})", flush=True)
        except Exception as e:  # noqa: BLE001 - the Hub being down must not stop training
            accelerator.print(f"WARNING: training state not pushed ({type(e).__name__}: {e}); training goes on, "
                              f"the local state is in {ctx.out / STATE_DIR}", flush=True)
    accelerator.wait_for_everyone()


def fit(ctx: LoopContext, validate: Callable[[torch.nn.Module], dict],
        on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainState:
    """Epochs of train → validate → keep best → save state (→ on_epoch_end), until epochs, steps or patience end."""
    accelerator, cfg, st = ctx.accelerator, ctx.cfg, ctx.state
    epoch = st.epoch + 1
    while epoch < ctx.epochs:  # a --time-budget plan may change ctx.epochs on the way
        train_loss = train_one_epoch(ctx, epoch)
        started = time.perf_counter()
        metrics = validate(ctx.eval_model)
        value = metrics[cfg.metric]
        st.epoch = epoch
        if improved(cfg, value, st.best):
            st.best, st.best_epoch, st.bad_epochs = value, epoch, 0
            save_best(accelerator, ctx.eval_model, ctx.out)
        else:
            st.bad_epochs += 1
        row = {"epoch": epoch + 1, "step": st.step, "train_loss": train_loss, "train_img_per_s": ctx.last_rate or 0.0,
               **{f"val_{k}": v for k, v in metrics.items()}}
        st.history.append(row)
        # the step goes as the step (trackio reserves a "step" key); the rest is the epoch's row
        accelerator.log({k: v for k, v in row.items() if k != "step"}, step=st.step)
        accelerator.print(f"epoch {epoch + 1}: train_loss {train_loss:.4f} val_{cfg.metric} {value:.4f} "
                  f"(best {st.best:.4f} @ epoch {st.best_epoch + 1})", flush=True)
        path = save_epoch_state(accelerator, ctx.out, epoch)
        accelerator.print(f"saved state {path}", flush=True)
        if cfg.hub.hub_push_state:
            push_training_state(ctx)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        finished = ctx.stopped or (ctx.cfg.max_steps is not None and st.step >= ctx.cfg.max_steps)
        if ctx.pacer is not None:  # the measured validation and saves re-plan the rest (every rank takes part)
            ctx.pacer.after_epoch(ctx, ctx.val_pass_s, time.perf_counter() - started, epoch + 1, finished)
        if finished:
            break
        if cfg.patience is not None and st.bad_epochs >= cfg.patience:
            accelerator.print(f"early stopping: no {cfg.metric} improvement for {cfg.patience} epochs", flush=True)
            break
        epoch += 1
    return st
