"""Naive reference for causal Lightning Attention: the masked quadratic form.

    o_t = scale * sum_{u<=t} exp(-s_h (t-u)) (q_t . k_u) v_u  +  scale * exp(-s_h (t+1)) q_t S0
    S_N = exp(-s_h N) S0 + sum_u exp(-s_h (N-1-u)) k_u^T v_u

Obviously correct and O(N^2) in time and memory: the oracle every other implementation
is tested against. Computes in fp32 (fp64 for fp64 inputs).
"""

from __future__ import annotations

import torch

from .inputs import check_inputs, compute_dtype, slopes_or_zeros, split_varlen


def _naive_one(q, k, v, s, scale, h0):
    """q, k [B,H,N,Dk], v [B,H,N,Dv] already in the compute dtype; s [H]; h0 [B,H,Dk,Dv] or None."""
    N = q.shape[2]
    pos = torch.arange(N, device=q.device, dtype=q.dtype)
    lag = pos[:, None] - pos[None, :]  # [N, N], t - u
    decay = torch.exp(-s.to(q.dtype)[:, None, None] * lag.clamp(min=0))  # [H, N, N]
    decay = decay.masked_fill(lag < 0, 0.0)
    o = (q @ k.transpose(-1, -2) * decay) @ v  # [B,H,N,Dv]
    lam_rev = torch.exp(-s.to(q.dtype)[:, None] * (N - 1 - pos))  # [H, N] decay of token u at the end
    state = torch.einsum("bhnk,hn,bhnv->bhkv", k, lam_rev, v)
    if h0 is not None:
        q_decay = torch.exp(-s.to(q.dtype)[:, None] * (pos + 1))  # [H, N]
        o = o + (q * q_decay[None, :, :, None]) @ h0
        state = state + torch.exp(-s.to(q.dtype) * N)[None, :, None, None] * h0
    return o * scale, state


def lightning_attn_naive(q, k, v, slopes=None, *, scale=1.0, initial_state=None,
                         output_final_state=False, cu_seqlens=None):
    shape = check_inputs(q, k, v, slopes, initial_state, cu_seqlens)
    ct = compute_dtype(q.dtype)
    s = slopes_or_zeros(slopes, shape.heads, q.device)
    q32, k32, v32 = q.to(ct), k.to(ct), v.to(ct)
    h0 = initial_state.to(ct) if initial_state is not None else None
    if cu_seqlens is None:
        o, state = _naive_one(q32, k32, v32, s, scale, h0)
    else:
        parts = [
            _naive_one(qi, ki, vi, s, scale, None if h0 is None else h0[i : i + 1])
            for i, (qi, ki, vi) in enumerate(zip(*(split_varlen(t, cu_seqlens) for t in (q32, k32, v32))))
        ]
        o = torch.cat([p[0] for p in parts], dim=2)
        state = torch.cat([p[1] for p in parts], dim=0)
    return o.to(q.dtype), (state if output_final_state else None)
