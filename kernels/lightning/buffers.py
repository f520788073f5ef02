"""Every buffer the Triton launchers allocate goes through `alloc`, for two debugging aids.

- Poison: with VSUITE_KERNELS_POISON=1 in the environment (or inside `poison()`), each new
  buffer is filled with NaN before a kernel writes it, so an element a kernel forgets to write
  shows up as NaN in the result instead of as stale memory that happens to look right. Off, it
  costs one dictionary lookup per buffer.
- Accounting: inside `record()`, each allocation is logged as (role, tag, bytes), role being
  "out" (returned to the caller: o, final state, dq, dk, dv, d(initial state)) or "scratch"
  (states, checkpoints, carries). Tests compare the scratch total with
  `lightning_workspace_bytes`, so the memory claim is checked on the CPU.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

_poison_override: bool | None = None
_recorders: list[list[tuple[str, str, int]]] = []


def poisoning() -> bool:
    if _poison_override is not None:
        return _poison_override
    return os.environ.get("VSUITE_KERNELS_POISON") == "1"


@contextmanager
def poison(on: bool = True):
    """Fill every buffer the launchers allocate with NaN while the block runs."""
    global _poison_override
    old, _poison_override = _poison_override, on
    try:
        yield
    finally:
        _poison_override = old


@contextmanager
def record():
    """Collect [(role, tag, nbytes)] of every allocation made while the block runs."""
    log: list[tuple[str, str, int]] = []
    _recorders.append(log)
    try:
        yield log
    finally:
        _recorders.remove(log)


def alloc(shape, dtype: torch.dtype, device, *, role: str, tag: str) -> torch.Tensor:
    """torch.empty, NaN-filled when poisoning; logged for `record`."""
    t = torch.empty(shape, dtype=dtype, device=device)
    if _recorders:
        for log in _recorders:
            log.append((role, tag, t.numel() * t.element_size()))
    if t.is_floating_point() and poisoning():
        t.fill_(float("nan"))
    return t
