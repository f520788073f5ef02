"""Chunked Lightning Attention in PyTorch: the CPU path, O(N) time and memory.

The sequence is cut into chunks of C tokens (the last one ragged). Within a chunk the
output is the masked quadratic form; across chunks a fp32 state [Dk, Dv] carries the past:

    O_c = scale * ( ((Q_c K_c^T) * M) V_c  +  (Q_c * q_decay) S_{c-1} )
    S_c = exp(-s len_c) S_{c-1} + (K_c * k_decay)^T V_c

with M[i, j] = exp(-s (i-j)) for i >= j, q_decay[i] = exp(-s (i+1)) and
k_decay[j] = exp(-s (len_c-1-j)). Only exponents within one chunk appear, so nothing
overflows however long the sequence. Chunks are processed G at a time (a super-block of
about BLOCK_ELEMS scores): their intra-chunk products, their state contributions and even the
state entering each of them are batched matmuls (the last via a [G, G] decay matrix),
so the only Python loop is over super-blocks and the working set stays bounded.
Memory: the output plus one super-block's scores and states, i.e. linear in N (autograd
keeps each block's intermediates for the backward, also linear in N).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .inputs import check_inputs, compute_dtype, slopes_or_zeros, split_varlen

DEFAULT_CHUNK = 128  # fastest on a 2-core AVX-512 CPU at D=128 (BENCHMARKS.md)
# Elements in one super-block temporary (scores [B,H,G,C,C]): 2M fp32 = 8 MB keeps every
# temporary under glibc's mmap threshold, so blocks reuse heap memory instead of paying
# page faults on fresh allocations (which cost more than the arithmetic on this path).
BLOCK_ELEMS = 1 << 21


def _tables(s, C, G, dtype):
    """Decay tables for chunks of C tokens, G chunks per super-block; s [H]."""
    j = torch.arange(C, device=s.device, dtype=dtype)
    s = s.to(dtype)
    lag = j[:, None] - j[None, :]
    intra = torch.exp(-s[:, None, None] * lag.clamp(min=0)).masked_fill(lag < 0, 0.0)  # [H, C, C]
    q_decay = torch.exp(-s[:, None] * (j + 1))  # [H, C]
    # Chunk g of a super-block enters with  lam^{C g} S_0 + sum_{g'<g} lam^{C (g-1-g')} kv_{g'}.
    g = torch.arange(G, device=s.device, dtype=dtype)
    gap = g[:, None] - 1 - g[None, :]  # [G, G]
    carry = torch.exp(-s[:, None, None] * C * gap.clamp(min=0)).masked_fill(gap < 0, 0.0)  # [H, G, G]
    start = torch.exp(-s[:, None] * C * g)  # [H, G]
    return intra[:, None], q_decay[:, None, :, None], carry, start


def _k_decay(s, C, G, last, dtype):
    """[H, G, C, 1]: exp(-s (len-1-j)) for token j of each chunk; zero on the padded tail."""
    j = torch.arange(C, device=s.device, dtype=dtype)
    lens = torch.full((G, 1), C, device=s.device, dtype=dtype)
    lens[-1] = last
    expo = lens - 1 - j  # [G, C]
    k_decay = torch.exp(-s.to(dtype)[:, None, None] * expo.clamp(min=0)).masked_fill(expo < 0, 0.0)
    return k_decay[..., None]


def _block(q, k, v, s, state, tables, C, inplace):
    """One super-block. q, k [B,H,L,Dk], v [B,H,L,Dv] with L <= G*C; state [B,H,Dk,Dv] entering it.

    Only the last chunk of the whole sequence can be ragged, so every chunk but the last
    has length C and the chunk-to-chunk decays form one [G, G] matrix per head.
    """
    B, H, L, _ = q.shape
    G = -(-L // C)
    pad = G * C - L
    # Contiguous blocks so the batched matmuls see flat batch dims (no hidden copies).
    qc, kc, vc = (F.pad(t, (0, 0, 0, pad)).reshape(B, H, G, C, -1) if pad else
                  t.contiguous().view(B, H, G, C, -1) for t in (q, k, v))
    intra, q_decay, carry, start = tables
    carry, start = carry[:, :G, :G], start[:, :G]  # a short last block uses the top-left corner
    last = L - (G - 1) * C  # length of the last chunk

    scores = qc @ kc.transpose(-1, -2)  # [B,H,G,C,C]
    scores = scores.mul_(intra) if inplace else scores * intra
    o = scores @ vc  # [B,H,G,C,Dv] intra-chunk part
    kv = (kc * _k_decay(s, C, G, last, q.dtype)).transpose(-1, -2) @ vc  # [B,H,G,Dk,Dv] each chunk's own
    entering = (carry @ kv.flatten(-2) + start[..., None] * state.flatten(-2)[:, :, None]).view_as(kv)
    inter = (qc * q_decay) @ entering  # [B,H,G,C,Dv] inter-chunk part
    o = o.add_(inter) if inplace else o + inter
    new_state = torch.exp(-s.to(q.dtype) * last)[:, None, None] * entering[:, :, -1] + kv[:, :, -1]
    return o.view(B, H, G * C, -1)[:, :, :L], new_state


def _chunk_one(q, k, v, s, scale, h0, C):
    """q, k [B,H,N,Dk], v [B,H,N,Dv] in compute dtype; h0 [B,H,Dk,Dv] or None."""
    B, H, N, Dk = q.shape
    Dv = v.shape[-1]
    state = h0 if h0 is not None else q.new_zeros(B, H, Dk, Dv)
    if N == 0:
        return v.new_zeros(v.shape), state
    C = max(1, min(C, N))
    G = max(1, min(-(-N // C), BLOCK_ELEMS // (B * H * C * max(C, Dk, Dv))))
    tables = _tables(s, C, G, q.dtype)
    # Without autograd, write blocks straight into one output buffer (one big allocation,
    # in-place ops); with autograd, keep each block's graph and concatenate.
    inplace = not (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, state)))
    out = torch.empty(B, H, N, Dv, dtype=q.dtype, device=q.device) if inplace else None
    outs = []
    for a in range(0, N, G * C):
        b = min(N, a + G * C)
        o, state = _block(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], s, state, tables, C, inplace)
        if inplace:
            out[:, :, a:b] = o.mul_(scale) if scale != 1.0 else o
        else:
            outs.append(o * scale if scale != 1.0 else o)
    if inplace:
        return out, state
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)), state


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
