"""The training loop shared by every task: `fit(config, model, data, recipe, out_dir=...)`.

It knows nothing about language modelling. It takes
  - `model`: an nn.Module; by default `model(**batch).loss` is the loss (Hugging Face style), or
    `loss_fn(model, batch)` computes it;
  - `data`: an iterable of batches (dicts of tensors) with `state_dict()` / `load_state_dict()`, whose
    position after k batches is exact (resuming continues with the batch an uninterrupted run would see);
  - `recipe`: the resolved Recipe, written to out_dir/recipe.toml and into every checkpoint;
  - optional `eval_fn(model, step) -> {name: float}` (run on every rank, in eval mode, without grad),
    and `save_extra(folder)` to add files (a tokenizer) to each checkpoint (rank 0).

Per update: `grad_accum` micro-batches (gradient sync only on the last), the loss averaged over ranks
(a NaN or inf stops the run with DivergedError before anything is stepped or saved), grad-norm clipping,
AdamW or SGD, the scheduled lr (vsuite.train.schedule). Stop requests (vsuite.train.signals): SIGTERM,
SIGUSR1 or OUT/STOP finish the update, save, write OUT/PREEMPTED and raise PreemptedError (exit 75), or
exit 0 under torchrun; Ctrl-C saves and raises InterruptedRunError (exit 130), a second Ctrl-C aborts.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..console import Progress, log, warn
from ..errors import DivergedError, InterruptedRunError, PreemptedError, RecipeError, UsageError, VsuiteError
from . import checkpoint as C
from . import distributed as D
from .config import TrainConfig
from .metrics import MetricsLog
from .schedule import lr_at
from . import signals as S

# Seconds to sleep after each update: lets tests and demos deliver a signal mid-run. Not for real runs.
STEP_DELAY_ENV = "VSUITE_TRAIN_STEP_DELAY"


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None
    losses: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    resumed_from: Path | None = None
    rank_checksums: list[float] = field(default_factory=list)

    def done_line(self, where: str) -> str:
        """"done: step N, loss a -> b in Xs; <where>", the closing log line of every training command."""
        loss = f", loss {self.losses[0]:.4f} -> {self.losses[-1]:.4f}" if self.losses else ""
        return f"done: step {self.step}{loss} in {self.elapsed:.1f}s; {where}"


def parameter_summary(model) -> str:
    """"12.34M parameters (5.67M trained)": the size line every finetune logs before it starts."""
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{total / 1e6:.2f}M parameters ({trained / 1e6:.2f}M trained)"


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)


def _set_determinism(config: TrainConfig, device: torch.device) -> None:
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Saturated softmax/sigmoid gradients underflow to denormals, which x86 CPUs process ~100x
        # slower (a small run stalls for minutes once it has learned); flushing them changes nothing else.
        torch.set_flush_denormal(True)
    elif config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _autocast(config: TrainConfig, device: torch.device):
    use_bf16 = config.dtype == "bfloat16" or (config.dtype == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _lr_scale(name: str, table: dict[str, float]) -> float:
    """The multiplier of the first key of `table` that `name` contains (1.0 if none)."""
    return next((m for part, m in table.items() if part in name), 1.0)


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Trainable parameters grouped by (weight decay: >= 2 dims, lr multiplier), in first-seen order so
    a resumed run rebuilds the same groups. Each group carries its `lr_scale` for the schedule."""
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((p.ndim >= 2, _lr_scale(name, config.lr_scale)), []).append(p)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    unused = [part for part in config.lr_scale if not any(part in n for n in names)]
    if unused:
        raise RecipeError(f"train.lr_scale: no trainable parameter name contains {unused[0]!r} "
                         f"(names look like {names[0] if names else 'none'!r}); fix the key or remove it")
    # Decayed groups first (the order before lr_scale existed, so older checkpoints resume), stable otherwise.
    ordered = sorted(groups.items(), key=lambda item: not item[0][0])
    return [{"params": ps, "weight_decay": config.weight_decay if decays else 0.0, "lr_scale": scale}
            for (decays, scale), ps in ordered]


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps)


def _enable_checkpointing(model: nn.Module) -> None:
    if getattr(model, "supports_gradient_checkpointing", False) and hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})  # >= 5.24
    elif getattr(model, "supports_gradient_checkpointing", False) and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        warn(f"{type(model).__name__} does not support activation checkpointing; training without it")


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _count(batch: dict) -> int:
    """Items in a batch for the throughput figure: tokens of input_ids, else elements of the first tensor."""
    t = batch.get("input_ids")
    if t is None:
        t = next((v for v in batch.values() if torch.is_tensor(v)), None)
    return int(t.numel()) if t is not None else 0


def _checksum(model: nn.Module) -> float:
    """A float64 fingerprint of the weights, to check that DDP ranks agree."""
    total = 0.0
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            local = p.to_local() if hasattr(p, "to_local") else p
            total += float(local.double().sum()) * (1 + (i % 7)) + float(local.double().abs().sum())
    return total


def _default_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    out = model(**batch)
    loss = getattr(out, "loss", None)
    if loss is None:
        raise TypeError(f"{type(out).__name__} has no .loss: pass loss_fn to the trainer")
    return loss


class _Run:
    """State of one fit() call; the methods are the loop's steps."""

    def __init__(self, config, model, data, recipe, out_dir, env, eval_fn, loss_fn, save_extra):
        self.config, self.model, self.data, self.recipe = config, model, data, recipe
        self.out_dir, self.env = Path(out_dir), env
        self.eval_fn, self.loss_fn, self.save_extra = eval_fn, loss_fn or _default_loss, save_extra
        self.step, self.tokens, self.elapsed_before = 0, 0, 0.0
        self.last_checkpoint: Path | None = None

    # -- setup
    def resume(self, resume: str) -> Path | None:
        env, out = self.env, self.out_dir
        found = None
        if env.is_main:  # rank 0 decides (and warns about skipped folders); the others follow
            try:
                if resume == "none" and any((p / C.MARKER).exists() for _, p in C.list_checkpoints(out)):
                    raise UsageError(f"{out} already holds checkpoints; pass --resume auto to continue that run, "
                                     "or --out NEW_DIR to start another")
                found = str(C.resolve_resume(resume, out) or "")
            except VsuiteError as err:
                found = err
        found = D.broadcast_object(env, found)
        if isinstance(found, VsuiteError):
            raise found
        if not found:
            if resume == "auto" and env.is_main:
                log(f"no checkpoint in {C.checkpoints_dir(out)}: starting from step 0")
            return None
        folder = Path(found)
        state = C.read_trainer_state(folder)
        C.load_model_weights(self.model, folder)
        self.step, self.tokens = int(state["step"]), int(state.get("tokens", 0))
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.data.load_state_dict(state["data"])
        self.last_checkpoint = folder
        if env.is_main:
            C.log_resume(folder, self.step)
            if state.get("total_steps", self.config.steps) != self.config.steps:
                warn(f"train.steps changed from {state['total_steps']} to {self.config.steps}: the learning-rate "
                     "schedule differs from the original run from here on")
        return folder

    def prepare(self) -> None:
        config, env = self.config, self.env
        self.model.to(env.device)
        if config.activation_checkpointing:
            _enable_checkpointing(self.model)
        self.model.train()
        self.mode = D.resolve_parallel(config.parallel, env)
        self.wrapped = D.wrap(self.model, env, self.mode)
        self.optimizer = _optimizer(self.wrapped, config)

    # -- one update
    def update(self, batches, autocast) -> tuple[float, float, float]:
        """One optimizer update; (loss averaged over micro-batches and ranks, grad norm, lr)."""
        config, env, wrapped = self.config, self.env, self.wrapped
        lr = lr_at(self.step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.steps,
                   min_lr_ratio=config.min_lr_ratio, schedule=config.schedule, warmup_start=config.warmup_start_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss_sum = torch.zeros((), device=env.device)
        count = 0
        for micro in range(config.grad_accum):
            batch = _to_device(next(batches), env.device)
            count += _count(batch)
            with D.no_sync(wrapped, self.mode, sync=micro == config.grad_accum - 1):
                with autocast:
                    loss = self.loss_fn(wrapped, batch)
                (loss / config.grad_accum).backward()
            loss_sum += loss.detach().float()
        loss_value = float(D.all_mean(env, loss_sum / config.grad_accum))
        if not math.isfinite(loss_value):
            self._diverged(f"loss is {loss_value}")
        norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), config.clip_grad or float("inf"))
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        if not math.isfinite(norm):
            self._diverged(f"the gradient norm is {norm}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += count * env.world_size
        return loss_value, norm, lr

    def _diverged(self, what: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        last = self.last_checkpoint
        keep = f"last good checkpoint: {C.describe(last)}" if last else "no checkpoint yet"
        raise DivergedError(f"training diverged at step {self.step + 1}: {what}; nothing was saved ({keep}). "
                            "Lower train.lr or raise train.warmup_steps, then rerun with --resume auto")

    # -- periodic work
    def evaluate(self, autocast) -> dict:
        if self.eval_fn is None:
            return {}
        self.model.eval()
        try:
            with torch.no_grad(), autocast:
                result = self.eval_fn(self.wrapped if self.mode == "fsdp" else self.model, self.step)
        finally:
            self.model.train()
        return result or {}

    def save(self, elapsed: float) -> Path:
        state = {"tokens": self.tokens, "elapsed": elapsed, "total_steps": self.config.steps,
                 "world_size": self.env.world_size, "parallel": self.mode, "data": self.data.state_dict()}
        folder = C.save(self.env, self.out_dir, self.step, self.wrapped, self.mode, self.optimizer, state,
                        recipe=self.recipe, save_extra=self.save_extra, max_shard_size=self.config.max_shard_size)
        if self.env.is_main:
            C.prune(self.out_dir, self.config.keep_last, protect=folder)
        D.barrier(self.env)
        self.last_checkpoint = folder
        return folder


def fit(config: TrainConfig, model: nn.Module, data, recipe=None, *, out_dir: str | Path, resume: str = "auto",
        env: D.DistEnv | None = None, eval_fn: Callable | None = None, loss_fn: Callable | None = None,
        save_extra: Callable[[Path], None] | None = None) -> TrainResult:
    """Train `model` on `data` for config.steps updates, resuming and checkpointing under out_dir."""
    env = env or D.init(config.device)
    _set_determinism(config, env.device)
    run = _Run(config, model, data, recipe, out_dir, env, eval_fn, loss_fn, save_extra)
    resumed = run.resume(resume)
    run.prepare()  # wrapping and the optimizer may still refuse the recipe (train.lr_scale): before any folder exists
    if env.is_main:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        S.clear_marker(run.out_dir)  # a marker from an earlier stop would make the job script requeue again
    if resumed is not None:
        C.load_train_state(env, resumed, run.wrapped, run.optimizer)
    else:  # the model was built under the same seed everywhere; from here each rank draws its own stream
        torch.manual_seed(config.seed * 1_000_003 + 7919 * (env.rank + 1))
    if env.is_main and recipe is not None:
        recipe.write(run.out_dir / "recipe.toml")
    result = TrainResult(run.step, resumed, resumed_from=resumed)
    if run.step >= config.steps:
        if env.is_main:
            log(f"already at step {run.step} of {config.steps} ({C.describe(resumed)}): nothing to do")
        result.checkpoint = resumed
        return result
    metrics = MetricsLog(run.out_dir / "metrics.jsonl", enabled=env.is_main,
                         resume_step=run.step if resumed is not None else None)
    try:
        _loop(run, metrics, result)
    except KeyboardInterrupt:  # a second Ctrl-C (vsuite.train.signals): nothing more is saved
        raise _aborted(run) from None
    finally:
        metrics.close()
    return result


def _loop(run: _Run, metrics: MetricsLog, result: TrainResult) -> None:
    config, env = run.config, run.env
    autocast = _autocast(config, env.device)
    delay = float(os.environ.get(STEP_DELAY_ENV, "0") or 0)
    batches = iter(run.data)
    start = time.monotonic()
    window_start, window_tokens = start, run.tokens
    progress = Progress("train", config.steps - run.step, every=config.log_every) if env.is_main else None
    with S.StopFlag(run.out_dir / S.STOP_FILE, announce=env.is_main) as stop, (progress or contextlib.nullcontext()):
        while run.step < config.steps:
            loss, norm, lr = run.update(batches, autocast)
            result.losses.append(loss)
            step, now = run.step, time.monotonic()
            elapsed = run.elapsed_before + now - start
            final = step == config.steps
            if step % config.log_every == 0 or final or step == 1:  # the first update shows the start
                tps = (run.tokens - window_tokens) / max(now - window_start, 1e-9)
                metrics.write({"step": step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens_per_s": tps,
                               "tokens": run.tokens, "elapsed": round(elapsed, 3)})
                window_start, window_tokens = now, run.tokens
                note = f"step {step} loss {loss:.4f} lr {lr:.2e} {tps:,.0f} tok/s"
            else:
                note = f"step {step} loss {loss:.4f}"
            if progress is not None:
                progress.advance(note)
            if (config.eval_every and step % config.eval_every == 0) or final:
                scores = run.evaluate(autocast)
                if scores:
                    metrics.write({"step": step, **{f"eval_{k}": v for k, v in scores.items()},
                                   "elapsed": round(elapsed, 3)})
                    if env.is_main:
                        log(f"eval at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
            if delay:
                time.sleep(delay)
            # every rank stops after the same update, for the strongest request any rank has seen
            kind = int(max(D.all_gather_float(env, float(stop.poll()))))
            if (config.save_every and step % config.save_every == 0) or final or kind:
                run.save(run.elapsed_before + time.monotonic() - start)
            if kind and not final:
                result.step, result.checkpoint = step, run.last_checkpoint
                _stop(run, stop, kind, step)
    if env.is_main:
        stop.clear_stop_file()  # a stop request that came with the last update is void: the run is done
    result.step, result.checkpoint = run.step, run.last_checkpoint
    result.elapsed = run.elapsed_before + time.monotonic() - start
    if run.mode != "fsdp":
        result.rank_checksums = D.all_gather_float(env, _checksum(run.model))
        if len(set(result.rank_checksums)) > 1 and env.is_main:
            warn(f"ranks disagree on the final weights: checksums {result.rank_checksums}")


def _stop(run: _Run, stop: S.StopFlag, kind: int, step: int) -> None:
    """After the stop checkpoint: the one line, the marker, and the exit (see vsuite.train.signals)."""
    saved, hint = C.describe(run.last_checkpoint), S.resume_command(run.out_dir)
    if kind == S.INTERRUPT:
        raise InterruptedRunError(f"interrupted at step {step}; saved {saved}; resume with: {hint}")
    reason = stop.reason or "a stop request on another rank"
    torchrun = S.under_torchrun()
    message = f"stopped by {reason} after step {step}; saved {saved}; resume with: {hint}"
    if run.env.is_main:
        marker = S.write_marker(run.out_dir, step=step, checkpoint=str(run.last_checkpoint), reason=reason,
                                exit_code=0 if torchrun else PreemptedError.exit_code, resume=hint)
        stop.clear_stop_file()
    if not torchrun:
        raise PreemptedError(message)
    # torchrun turns a non-zero worker exit into a ChildFailedError traceback: exit 0, the marker tells
    if run.env.is_main:
        log(f"preempted: {message} (marker {C.describe(marker)})")
    raise SystemExit(0)


def _aborted(run: _Run) -> InterruptedRunError:
    last = run.last_checkpoint
    kept = (f"the last complete checkpoint is {C.describe(last)}; resume with: {S.resume_command(run.out_dir)}"
            if last else "no checkpoint was saved in this run folder")
    return InterruptedRunError(f"aborted at step {run.step} without saving (second Ctrl-C); {kept}")
