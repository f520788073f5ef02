"""Recurrent form of Lightning Attention: the decoding step and a token-by-token loop.

    S_t = exp(-s_h) S_{t-1} + k_t^T v_t        (fp32 state [B, H, Dk, Dv])
    o_t = scale * q_t S_t

Update first, then read, so the current token has weight 1 and no lambda^{-t} factor ever
appears (TNL's "robust inference"). `lightning_attn_step` is what a decoder calls once per
new token; `lightning_attn_recurrent` loops it over a sequence and serves as a second oracle.
"""

from __future__ import annotations

import torch

from .inputs import check_inputs, compute_dtype, slopes_or_zeros, split_varlen


def lightning_attn_step(q, k, v, state=None, slopes=None, *, scale=1.0):
    """One decoding step. q, k [B,H,Dk], v [B,H,Dv], state [B,H,Dk,Dv] (None = zeros).

    Returns (o [B,H,Dv] in q's dtype, new state [B,H,Dk,Dv] fp32).
    """
    B, H, Dk = q.shape
    ct = compute_dtype(q.dtype)
    if state is None:
        state = q.new_zeros(B, H, Dk, v.shape[-1], dtype=ct)
    lam = torch.exp(-slopes_or_zeros(slopes, H, q.device).to(ct))[None, :, None, None]
    state = lam * state.to(ct) + k.to(ct)[..., :, None] * v.to(ct)[..., None, :]
    o = torch.einsum("bhk,bhkv->bhv", q.to(ct), state) * scale
    return o.to(q.dtype), state


def _recurrent_one(q, k, v, slopes, scale, h0):
    outs, state = [], h0
    for t in range(q.shape[2]):
        o_t, state = lightning_attn_step(q[:, :, t], k[:, :, t], v[:, :, t], state, slopes, scale=scale)
        outs.append(o_t)
    if state is None:  # empty sequence, no initial state
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[3], v.shape[3], dtype=compute_dtype(q.dtype))
    o = torch.stack(outs, dim=2) if outs else v.new_zeros(v.shape)
    return o, state


def lightning_attn_recurrent(q, k, v, slopes=None, *, scale=1.0, initial_state=None,
                             output_final_state=False, cu_seqlens=None):
    check_inputs(q, k, v, slopes, initial_state, cu_seqlens)
    if cu_seqlens is None:
        o, state = _recurrent_one(q, k, v, slopes, scale, initial_state)
    else:
        parts = [
            _recurrent_one(qi, ki, vi, slopes, scale, None if initial_state is None else initial_state[i : i + 1])
            for i, (qi, ki, vi) in enumerate(zip(*(split_varlen(t, cu_seqlens) for t in (q, k, v))))
        ]
        o = torch.cat([p[0] for p in parts], dim=2)
        state = torch.cat([p[1] for p in parts], dim=0)
    return o, (state if output_final_state else None)
