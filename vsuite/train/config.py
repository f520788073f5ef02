"""Typed config of the trainer (the [train] table of a pretrain or finetune recipe).

Notable:
  - `steps` counts optimizer updates; one update = `grad_accum` micro-batches on every rank, so the
    global batch is data.batch_size x grad_accum x world size.
  - `optimizer`: AdamW (the language models) or SGD with momentum (the official LVT recipes).
  - The learning rate warms up linearly (from `warmup_start_lr`) to `lr` over `warmup_steps`, then
    (schedule = "cosine") follows a cosine down to `lr * min_lr_ratio` at `steps`; also "inverse_sqrt",
    "constant" and "linear" (vsuite.train.schedule).
    A `warmup_steps` above `steps` (a short try of a long recipe) is clamped to `steps` with a one-line warning.
  - `dtype = "auto"`: bf16 autocast on CUDA (fp32 master weights), fp32 on the CPU.
  - `parallel = "auto"`: DDP when launched with several processes (torchrun), else one process;
    "fsdp" shards parameters, gradients and optimizer state with FSDP2 (`fully_shard`).
  - `lr_scale`: per-part learning-rate multipliers by parameter name (a backbone at a fraction of the lr).
  - `save_every = 0` saves only at the end (and on SIGTERM/SIGUSR1); `keep_last = 0` keeps every checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    out_dir: str = Field("", description="run folder; empty: runs/<recipe name>")
    steps: int = Field(1000, ge=1, description="optimizer updates")
    lr: float = Field(3e-4, gt=0)
    schedule: Literal["cosine", "inverse_sqrt", "constant", "linear"] = "cosine"  # after the linear warmup
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr = lr * min_lr_ratio (cosine end)")
    warmup_steps: int = Field(100, ge=0)
    warmup_start_lr: float = Field(0.0, ge=0, description="lr of the first warmup step's ramp start")
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = Field(0.1, ge=0, description="AdamW decoupled / SGD L2 decay, on parameters with >= 2 dims")
    # {name part: multiplier}: a parameter whose name contains the key trains at lr * multiplier (the first
    # matching key counts), e.g. {"swin." = 0.05} for AVLFormer's video backbone as the official code does.
    lr_scale: dict[str, float] = Field(default_factory=dict)
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.95])  # AdamW
    eps: float = Field(1e-8, gt=0)  # AdamW
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD
    nesterov: bool = False  # SGD
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer update")
    clip_grad: float = Field(1.0, ge=0, description="max global grad norm; 0 = no clipping")
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda; with torchrun each rank uses cuda:LOCAL_RANK
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    parallel: Literal["auto", "none", "ddp", "fsdp"] = "auto"
    activation_checkpointing: bool = False
    deterministic: bool = False  # deterministic CUDA algorithms too (slower); CPU runs are always deterministic
    log_every: int = Field(10, ge=1, description="steps between metrics lines and plain progress lines")
    eval_every: int = Field(0, ge=0, description="steps between eval callbacks; 0 = only at the end")
    save_every: int = Field(0, ge=0, description="steps between checkpoints; 0 = only at the end")
    keep_last: int = Field(3, ge=0, description="checkpoints kept; 0 = all")
    max_shard_size: str = "5GB"  # safetensors shards above this size

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        bad = {k: m for k, m in self.lr_scale.items() if not k or m < 0}
        if bad:
            raise ValueError(f"lr_scale maps non-empty parameter-name parts to multipliers >= 0, got {bad}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup_steps > self.steps:
            # A short run of a long recipe (train.steps=20 on a recipe that warms up over 40) is what a quick
            # try looks like: warm up over all the steps instead of refusing to start.
            from ..console import warn

            warn(f"train.warmup_steps ({self.warmup_steps}) exceeds train.steps ({self.steps}): "
                 f"warming up over all {self.steps} steps")
            self.warmup_steps = self.steps
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self


def run_folder(train: TrainConfig, source: str) -> Path:
    """The run folder: train.out_dir, else runs/<recipe file name without .toml>."""
    return Path(train.out_dir or Path("runs") / Path(source).stem)


class FinetuneTaskConfig(BaseModel):
    """The [task] table of a finetune recipe: which kind of training run it is. vsuite.recipes resolves the
    recipe against the tables of "finetune-<kind>"; `vsuite finetune` runs that kind's task."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["classify", "caption", "describe", "segment"] = "classify"
