"""Argument checks shared by every Lightning Attention implementation.

All implementations take the same arguments, so they are validated once here and the
errors read the same whichever path runs. Layout is head-first: q, k [B, H, N, Dk],
v [B, H, N, Dv]. With `cu_seqlens` (varlen) B must be 1 and the sequences are packed
along N; states then have one row per sequence instead of one per batch row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MIN_HEAD_DIM, MAX_HEAD_DIM = 1, 256


@dataclass(frozen=True)
class AttnShape:
    batch: int  # B, or the number of sequences S with cu_seqlens
    heads: int
    seq: int  # N (total packed length with cu_seqlens)
    dk: int
    dv: int


def check_inputs(q, k, v, slopes, initial_state, cu_seqlens) -> AttnShape:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D head-first tensors [B, H, N, D]")
    B, H, N, Dk = q.shape
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:3] != (B, H, N):
        raise ValueError(f"v must be [B, H, N, Dv] with B, H, N = {B}, {H}, {N}; got {tuple(v.shape)}")
    Dv = v.shape[-1]
    for name, d in (("Dk", Dk), ("Dv", Dv)):
        if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
            raise ValueError(f"head dim {name}={d} is outside the supported range 1..{MAX_HEAD_DIM}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if slopes is not None and (slopes.dim() != 1 or slopes.shape[0] != H):
        raise ValueError(f"slopes must have shape [H] = [{H}], got {tuple(slopes.shape)}")
    n_states = B
    if cu_seqlens is not None:
        n_states = check_cu_seqlens(cu_seqlens, B, N)
    if initial_state is not None and tuple(initial_state.shape) != (n_states, H, Dk, Dv):
        raise ValueError(
            f"initial_state must be [{n_states}, {H}, {Dk}, {Dv}] (one state per "
            f"{'sequence' if cu_seqlens is not None else 'batch row'}), got {tuple(initial_state.shape)}"
        )
    return AttnShape(n_states, H, N, Dk, Dv)


def check_cu_seqlens(cu_seqlens: torch.Tensor, batch: int, seq: int) -> int:
    """Validate FlashAttention-style cumulative lengths [S+1]; returns S."""
    if batch != 1:
        raise ValueError(f"with cu_seqlens the batch size must be 1 (sequences packed along N), got {batch}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise ValueError("cu_seqlens must be a 1-D tensor [S+1] starting at 0")
    if cu_seqlens.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"cu_seqlens must be int32 or int64, got {cu_seqlens.dtype}")
    c = cu_seqlens.tolist()
    if c[0] != 0 or c[-1] != seq or any(b < a for a, b in zip(c, c[1:])):
        raise ValueError(f"cu_seqlens must rise from 0 to N={seq}, got {c}")
    return len(c) - 1


def slopes_or_zeros(slopes, heads: int, device) -> torch.Tensor:
    """fp32 [H] slopes; None means no decay (s = 0, lambda = 1)."""
    if slopes is None:
        return torch.zeros(heads, dtype=torch.float32, device=device)
    return slopes.to(device=device, dtype=torch.float32)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulate in fp32, or in fp64 when the caller asks for fp64 (test oracles)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def split_varlen(x: torch.Tensor, cu_seqlens) -> list[torch.Tensor]:
    """[1, H, N, D] packed -> list of [1, H, n_i, D] views, one per sequence."""
    c = cu_seqlens.tolist()
    return [x[:, :, a:b] for a, b in zip(c, c[1:])]
