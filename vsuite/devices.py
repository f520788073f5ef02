"""The one place that turns `--device` / `--dtype` strings into torch objects.

Two steps, so that bad values fail before torch is imported:
- `check_device_spec` / `check_dtype_spec` are pure string checks (UsageError, exit 2) for the CLI;
- `resolve_device` / `resolve_dtype` import torch and check the machine (DeviceError, exit 6).
Every command (bench-kernels, pretrain/finetune, eval, classify, caption) goes through these.
"""

from __future__ import annotations

import re

from .errors import DeviceError, UsageError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
_DEVICE_RE = re.compile(r"auto|cpu|cuda(?::(\d+))?")


def check_device_spec(spec: str, flag: str = "--device") -> str:
    """The normalised spec (lower case, stripped); UsageError when it is not auto | cpu | cuda | cuda:N."""
    norm = str(spec).strip().lower()
    if not _DEVICE_RE.fullmatch(norm):
        raise UsageError(f"{flag} must be {DEVICE_CHOICES}, got {spec!r}")
    return norm


def check_dtype_spec(spec: str, flag: str = "--dtype", choices: tuple[str, ...] = DTYPE_CHOICES) -> str:
    norm = str(spec).strip().lower()
    aliases = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16"}
    norm = aliases.get(norm, norm)
    if norm not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, got {spec!r}")
    return norm


def resolve_device(spec: str = "auto", local_rank: int = 0, flag: str = "--device"):
    """auto | cpu | cuda | cuda:N -> torch.device.

    `auto` is this process's GPU (cuda:<local_rank>, the torchrun/SLURM convention) when CUDA is
    visible, else the CPU. A bare `cuda` also means cuda:<local_rank>. DeviceError (exit 6) when
    CUDA is asked for and absent, or the index does not exist.
    """
    import torch

    norm = check_device_spec(spec, flag)
    if norm == "cpu" or (norm == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"{flag} {spec}: CUDA is not available on this machine; use {flag} cpu or auto")
    match = _DEVICE_RE.fullmatch(norm)
    index = int(match.group(1)) if match and match.group(1) is not None else local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"{flag} {spec}: cuda:{index} does not exist, this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def resolve_dtype(spec: str, device, flag: str = "--dtype"):
    """auto (bf16 on a GPU that has it, else fp16 on GPU; fp32 on CPU) | float32 | float16 | bfloat16."""
    import torch

    norm = check_dtype_spec(spec, flag)
    if norm == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    dtype = getattr(torch, norm)
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise DeviceError(f"{torch.cuda.get_device_name(device)} has no bfloat16 support; use {flag} float16 or float32")
    return dtype
