"""Chunked Lightning Attention in PyTorch: the CPU path, O(N) time and memory.

The sequence is cut into chunks of C tokens (the last one ragged). Within a chunk the
output is the masked quadratic form; across chunks a fp32 state [Dk, Dv] carries the past:

    O_c = scale * ( ((Q_c K_c^T) * M) V_c  +  (Q_c * q_decay) S_{c-1} )
    S_c = exp(-s len_c) S_{c-1} + (K_c * k_decay)^T V_c

with M[i, j] = exp(-s (i-j)) for i >= j, q_decay[i] = exp(-s (i+1)) and
k_decay[j] = exp(-s (len_c-1-j)). Only exponents within one chunk appear, so nothing
overflows however long the sequence. Each (batch row, head) is processed on its own
contiguous [N, D] slice, G chunks at a time (a super-block of about BLOCK_ELEMS scores):
the intra-chunk products and each chunk's state contribution are batched matmuls over the
G chunks, the state entering each chunk comes from small decay matmuls, and the intra and inter
parts of the output meet in one fused baddbmm written straight into the output.
Memory: the output plus one super-block's scores and states, i.e. linear in N (autograd
keeps each block's intermediates for the backward, also linear in N).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .inputs import check_inputs, compute_dtype, slopes_or_zeros, split_varlen

DEFAULT_CHUNK = 128  # fastest on a 2-core AVX-512 CPU at D=128 (BENCHMARKS.md)
# Elements in one super-block temporary (scores [G,C,C] of one head): 2M fp32 = 8 MB keeps
# the batched matmuls' operands cache-friendly and every temporary under glibc's mmap
# threshold, so blocks reuse heap memory instead of paying page faults on fresh allocations.
BLOCK_ELEMS = 1 << 21


def _tables(s, C, scale, dtype):
    """Per-head decay tables for chunks of C tokens; s is a 0-d tensor. `scale` is folded in.

    Returns (intra [C, C], q_decay [C, 1], fold [C, C] or None): `fold` is lam^{-C} on and
    below the diagonal, which turns (Q*q_decay)(K*k_decay)^T into the masked score; None where
    the decay is too strong for that form in fp32 (see FOLD_MAX_DECAY).
    """
    j = torch.arange(C, device=s.device, dtype=dtype)
    s = s.to(dtype)
    lag = j[:, None] - j[None, :]
    intra = torch.exp(-s * lag.clamp(min=0)).masked_fill(lag < 0, 0.0) * scale  # [C, C]
    q_decay = torch.exp(-s * (j + 1))[:, None] * scale  # [C, 1]
    fold = None
    if float(s) * C <= FOLD_MAX_DECAY:
        fold = torch.ones(C, C, device=s.device, dtype=dtype).tril_() * torch.exp(s * C)
    return intra, q_decay, fold


# Largest s*C for which the folded score form is used: lam^{-C} <= e^50 stays far from fp32's
# overflow, and products lam^{C+d} q.k only drop below fp32's range for lags d whose true weight
# lam^d is under e^{-37} (1e-16), i.e. nothing is lost.
FOLD_MAX_DECAY = 50.0


def _k_decay(s, C, G, last, dtype):
    """[G, C, 1]: exp(-s (len-1-j)) for token j of each chunk; zero on the padded tail."""
    j = torch.arange(C, device=s.device, dtype=dtype)
    lens = torch.full((G, 1), C, device=s.device, dtype=dtype)
    lens[-1] = last
    expo = lens - 1 - j  # [G, C]
    return (torch.exp(-s.to(dtype) * expo.clamp(min=0)).masked_fill(expo < 0, 0.0))[..., None]


SCAN = 16  # chunks per decay matmul in the state scan


class _Workspace:
    """Reusable buffers for the no-autograd path: one set, sized for a full super-block, so the
    loop over heads and blocks allocates nothing (fresh allocations cost page faults)."""

    def __init__(self, G, C, Dk, Dv, like):
        new = lambda *shape: like.new_empty(shape)  # noqa: E731
        self.scores, self.qd, self.kd = new(G, C, C), new(G, C, Dk), new(G, Dk, C)  # kd stored transposed
        self.kv, self.entering = new(G, Dk, Dv), new(G, Dk, Dv)

    def take(self, G):
        return self.scores[:G], self.qd[:G], self.kd[:G], self.kv[:G], self.entering[:G]


def _scan_tables(s, C, n, dtype, device):
    """[n, n] chunk-to-chunk decays lam^{C (g-1-g')} (g' < g) and [n] lam^{C g}."""
    g = torch.arange(n, device=device, dtype=dtype)
    s = s.to(dtype)
    gap = g[:, None] - 1 - g[None, :]
    return torch.exp(-s * C * gap.clamp(min=0)).masked_fill(gap < 0, 0.0), torch.exp(-s * C * g)


def _entering_states(kv, state, s, C, last, out=None):
    """The state entering each chunk of a block, and the state after the block.

    kv [G, Dk, Dv] holds each chunk's own contribution, state [Dk, Dv] enters the block:
        entering_g = lam^{C g} state + sum_{g' < g} lam^{C (g-1-g')} kv_{g'}
    With `out` [G, Dk, Dv] (no autograd): the recurrence entering_{g+1} = lam^C entering_g + kv_g,
    one fused in-place axpy per chunk on L2-resident [Dk, Dv] slices. Measured on the 2-core CPU
    at G = 128, D = 128: 3 ms per block against ~50 ms for the grouped matmul form below, whose
    [SCAN, SCAN] x [SCAN, Dk*Dv] product is a skinny, memory-bound GEMM.
    With autograd: two levels, so the graph stays short: inside groups of SCAN chunks one
    [SCAN, SCAN] x [SCAN, Dk*Dv] matmul plus a rank-1 update, a short loop from group to group.
    Only the block's last chunk may be short (`last` tokens).
    """
    if out is not None:
        return _entering_states_inplace(kv, state, s, C, last, out)
    G = kv.shape[0]
    carry, start = _scan_tables(s, C, min(G, SCAN), kv.dtype, kv.device)
    lam_c, lam_last = torch.exp(-s.to(kv.dtype) * C), torch.exp(-s.to(kv.dtype) * last)
    groups = []
    for a in range(0, G, SCAN):
        part = kv[a:a + SCAN]  # [n, Dk, Dv]
        n = part.shape[0]
        entering = torch.addr(carry[:n, :n] @ part.reshape(n, -1), start[:n], state.reshape(-1)).view_as(part)
        state = (lam_last if a + n == G else lam_c) * entering[-1] + part[-1]
        groups.append(entering)
    return (groups[0] if len(groups) == 1 else torch.cat(groups)), state


def _entering_states_inplace(kv, state, s, C, last, out):
    """`_entering_states` into `out` [G, Dk, Dv], one axpy per chunk (no autograd)."""
    G = kv.shape[0]
    # Python floats: exp(-s C) in the compute dtype, so the factor is the one the graph path uses.
    lam_c = float(torch.exp(-s.to(kv.dtype) * C))
    lam_last = float(torch.exp(-s.to(kv.dtype) * last))
    out[0].copy_(state)
    for g in range(1, G):
        torch.add(kv[g - 1], out[g - 1], alpha=lam_c, out=out[g])  # kv_{g-1} + lam^C entering_{g-1}
    return out, torch.add(kv[G - 1], out[G - 1], alpha=lam_last)


def _block(q, k, v, s, state, tables, C, out, ws):
    """One super-block of one head. q, k [L, Dk], v [L, Dv] contiguous, L <= G*C; state [Dk, Dv].

    With a workspace `ws` (no autograd) the output goes into `out` [L, Dv] with in-place ops;
    else it is returned. Only the last chunk of the sequence can be ragged (zero-padded here).
    """
    L = q.shape[0]
    G = -(-L // C)
    pad = G * C - L
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    qc, kc, vc = (t.view(G, C, -1) for t in (q, k, v))
    intra, q_decay, fold = tables
    last = L - (G - 1) * C  # length of the last chunk
    k_decay = _k_decay(s, C, G, last, q.dtype)
    if ws is None:
        scores = torch.bmm(qc, kc.transpose(1, 2)) * intra  # [G, C, C]
        kv = torch.bmm((kc * k_decay).transpose(1, 2), vc)  # [G, Dk, Dv] each chunk's own part
        entering, state = _entering_states(kv, state, s, C, last)
        o = torch.baddbmm(torch.bmm(scores, vc), qc * q_decay, entering).view(G * C, -1)[:L]
        return o, state
    scores, qd, kd_t, kv, entering = ws.take(G)
    torch.mul(qc, q_decay, out=qd)  # [G, C, Dk]  (Q * q_decay, scale folded in)
    torch.mul(kc.transpose(1, 2), k_decay.transpose(1, 2), out=kd_t)  # [G, Dk, C], written transposed
    if fold is not None:
        # (Q*q_decay)(K*k_decay)^T = lam^{C+i-j} q.k: times lam^{-C} on the lower triangle it is the
        # masked score, so every matmul below is a plain (non-transposed) GEMM on operands we need anyway.
        torch.bmm(qd, kd_t, out=scores).mul_(fold)
        if last < C:  # the ragged last chunk's k_decay counts from its own end: lam^{last+i-j}
            scores[-1].mul_(torch.exp(-s.to(q.dtype) * (C - last)))
    else:  # strong decay: lam^{-C} would overflow fp32, keep the direct form
        torch.bmm(qc, kc.transpose(1, 2), out=scores).mul_(intra)
    torch.bmm(kd_t, vc, out=kv)
    entering, state = _entering_states(kv, state, s, C, last, out=entering)
    o = out.view(G, C, -1) if not pad else torch.empty_like(vc)
    torch.bmm(scores, vc, out=o).baddbmm_(qd, entering)
    if pad:
        out.copy_(o.view(G * C, -1)[:L])
    return out, state


def _head(q, k, v, s, state, scale, C, G, out, ws):
    """One (batch row, head): q, k [N, Dk], v [N, Dv] contiguous, so every super-block is a
    view (no copies) and the batched matmuls run over its G chunks."""
    N = q.shape[0]
    tables = _tables(s, C, scale, q.dtype)
    pieces = []
    for a in range(0, N, G * C):
        b = min(N, a + G * C)
        o, state = _block(q[a:b], k[a:b], v[a:b], s, state, tables, C, None if out is None else out[a:b], ws)
        pieces.append(o)
    return (out if out is not None else torch.cat(pieces)), state


def _chunk_one(q, k, v, s, scale, h0, C):
    """q, k [B,H,N,Dk], v [B,H,N,Dv] in compute dtype; h0 [B,H,Dk,Dv] or None."""
    B, H, N, Dk = q.shape
    Dv = v.shape[-1]
    state = h0 if h0 is not None else q.new_zeros(B, H, Dk, Dv)
    if N == 0:
        return v.new_zeros(v.shape), state
    C = max(1, min(C, N))
    G = max(1, min(-(-N // C), BLOCK_ELEMS // (C * max(C, Dk, Dv))))
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    # Without autograd, blocks are written straight into one output buffer with in-place
    # ops on reused buffers; with autograd, each head keeps its graph and heads are stacked.
    inplace = not (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, state)))
    out = torch.empty(B, H, N, Dv, dtype=q.dtype, device=q.device) if inplace else None
    ws = _Workspace(G, C, Dk, Dv, q) if inplace else None
    outs, states = [], []
    for b in range(B):
        for h in range(H):
            o, st = _head(q[b, h], k[b, h], v[b, h], s[h], state[b, h], scale, C, G,
                          None if out is None else out[b, h], ws)
            outs.append(o)
            states.append(st)
    final = torch.stack(states).view(B, H, Dk, Dv)
    return (out if inplace else torch.stack(outs).view(B, H, N, Dv)), final


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
