"""Chunked Lightning Attention in PyTorch: the CPU path, O(N) time and memory.

The sequence is cut into chunks of C tokens (the last one ragged). Within a chunk the
output is the masked quadratic form; across chunks a fp32 state [Dk, Dv] carries the past:

    O_c = scale * ( ((Q_c K_c^T) * M) V_c  +  (Q_c * q_decay) S_{c-1} )
    S_c = exp(-s len_c) S_{c-1} + (K_c * k_decay)^T V_c

with M[i, j] = exp(-s (i-j)) for i >= j, q_decay[i] = exp(-s (i+1)) and
k_decay[j] = exp(-s (len_c-1-j)). Only exponents within one chunk appear, so nothing
overflows however long the sequence. All chunks' intra-chunk products and state
contributions are computed in batched matmuls (that is where the FLOPs are); only the
cheap state recurrence over chunks is a Python loop. Memory: scores C per token, chunk
states Dk*Dv/C per token, both linear in N. Autograd gives the backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .inputs import check_inputs, compute_dtype, slopes_or_zeros, split_varlen

DEFAULT_CHUNK = 128  # measured fastest on a 2-core AVX-512 CPU at D=128 (see BENCHMARKS.md)


def _decays(s, N, C, dtype):
    """Per-head decay tables for n_chunks = ceil(N/C) chunks; s [H]."""
    n_chunks = -(-N // C)
    j = torch.arange(C, device=s.device, dtype=dtype)
    s = s.to(dtype)[:, None]
    lag = j[:, None] - j[None, :]
    intra = torch.exp(-s[:, :, None] * lag.clamp(min=0)).masked_fill(lag < 0, 0.0)  # [H, C, C]
    q_decay = torch.exp(-s * (j + 1))  # [H, C]
    lens = torch.full((n_chunks,), C, device=s.device, dtype=dtype)
    lens[-1] = N - (n_chunks - 1) * C
    expo = lens[:, None] - 1 - j[None, :]  # [n_chunks, C], negative on the padded tail
    k_decay = torch.exp(-s[:, :, None] * expo.clamp(min=0)).masked_fill(expo < 0, 0.0)  # [H, n_chunks, C]
    block_decay = torch.exp(-s * lens)  # [H, n_chunks]
    return intra, q_decay, k_decay, block_decay


def _chunk_one(q, k, v, s, scale, h0, C):
    """q, k [B,H,N,Dk], v [B,H,N,Dv] in compute dtype; h0 [B,H,Dk,Dv] or None."""
    B, H, N, Dk = q.shape
    Dv = v.shape[-1]
    if N == 0:
        state = h0 if h0 is not None else q.new_zeros(B, H, Dk, Dv)
        return v.new_zeros(v.shape), state
    C = min(C, N)
    n_chunks = -(-N // C)
    pad = n_chunks * C - N
    qc, kc, vc = (F.pad(t, (0, 0, 0, pad)).view(B, H, n_chunks, C, -1) for t in (q, k, v))
    intra, q_decay, k_decay, block_decay = _decays(s, N, C, q.dtype)

    scores = (qc @ kc.transpose(-1, -2)) * intra[None, :, None]  # [B,H,n,C,C]
    o = scores @ vc  # [B,H,n,C,Dv]
    kv = (kc * k_decay[None, :, :, :, None]).transpose(-1, -2) @ vc  # [B,H,n,Dk,Dv]

    # State entering each chunk: S_{-1} = h0, S_c = bd_c S_{c-1} + kv_c (cheap loop).
    state = h0 if h0 is not None else q.new_zeros(B, H, Dk, Dv)
    entering = []
    for c in range(n_chunks):
        entering.append(state)
        state = block_decay[None, :, c, None, None] * state + kv[:, :, c]
    entering = torch.stack(entering, dim=2)  # [B,H,n,Dk,Dv]
    o = o + (qc * q_decay[None, :, None, :, None]) @ entering
    o = o.reshape(B, H, n_chunks * C, Dv)[:, :, :N]
    return o * scale, state


def lightning_attn_chunk(q, k, v, slopes=None, *, scale=1.0, initial_state=None,
                         output_final_state=False, cu_seqlens=None, chunk_size=DEFAULT_CHUNK):
    shape = check_inputs(q, k, v, slopes, initial_state, cu_seqlens)
    ct = compute_dtype(q.dtype)
    s = slopes_or_zeros(slopes, shape.heads, q.device)
    q32, k32, v32 = q.to(ct), k.to(ct), v.to(ct)
    h0 = initial_state.to(ct) if initial_state is not None else None
    if cu_seqlens is None:
        o, state = _chunk_one(q32, k32, v32, s, scale, h0, chunk_size)
    else:
        parts = [
            _chunk_one(qi, ki, vi, s, scale, None if h0 is None else h0[i : i + 1], chunk_size)
            for i, (qi, ki, vi) in enumerate(zip(*(split_varlen(t, cu_seqlens) for t in (q32, k32, v32))))
        ]
        o = torch.cat([p[0] for p in parts], dim=2)
        state = torch.cat([p[1] for p in parts], dim=0)
    return o.to(q.dtype), (state if output_final_state else None)
