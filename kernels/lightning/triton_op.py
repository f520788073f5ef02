"""Triton Lightning Attention with autograd: `lightning_attn_triton`.

Forward (triton_fwd.py): chunk states h_c, then all chunks' outputs in parallel.
Backward (triton_bwd.py): recompute h_c, reverse pass for the state gradients dh_c (seeded
with the upstream gradient of the final state), then dq, dk, dv in parallel over chunks.
Gradients flow to q, k, v and initial_state; slopes and cu_seqlens get none.
"""

from __future__ import annotations

import torch

from .inputs import check_inputs, slopes_or_zeros
from .triton_bwd import chunk_dstates, chunk_grads
from .triton_fwd import CHUNK, ChunkTable, KernelConfig, chunk_outputs, chunk_states

_SUPPORTED = (torch.float32, torch.float16, torch.bfloat16)


class LightningAttnTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, slopes, initial_state, scale, output_final_state, table, cfg):
        # q, k [B,H,T,Dk], v [B,H,T,Dv] contiguous; slopes fp32 [H]; initial_state [S,H,Dk,Dv] or None
        h0 = initial_state.contiguous() if initial_state is not None else None
        h, ht = chunk_states(k, v, slopes, h0, table, cfg, output_final_state)
        o = chunk_outputs(q, k, v, slopes, h, scale, table, cfg)
        ctx.save_for_backward(q, k, v, slopes, h0)  # h is recomputed: no O(T * Dk * Dv / C) activation
        ctx.scale, ctx.table, ctx.cfg = scale, table, cfg
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)  # an unused final state arrives as None, not zeros
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, slopes, h0 = ctx.saved_tensors
        table, cfg, scale = ctx.table, ctx.cfg, ctx.scale
        do = torch.zeros_like(v) if do is None else do.contiguous().to(q.dtype)
        dht = None if dht is None else dht.contiguous()
        h, _ = chunk_states(k, v, slopes, h0, table, cfg, store_final=False)
        want_dh0 = h0 is not None and ctx.needs_input_grad[4]
        dh, dh0 = chunk_dstates(q, do, slopes, dht, scale, table, cfg, want_dh0=want_dh0)
        dq, dk, dv = chunk_grads(q, k, v, do, slopes, h, dh, scale, table, cfg)
        if dh0 is not None:
            dh0 = dh0.to(ctx.h0_dtype)
        return dq, dk, dv, None, dh0, None, None, None, None


def lightning_attn_triton(q, k, v, slopes=None, *, scale=1.0, initial_state=None,
                          output_final_state=False, cu_seqlens=None, chunk_size=CHUNK):
    """Causal Lightning Attention on Triton; same contract as `lightning_attn` (see naive.py).

    q, k [B,H,N,Dk], v [B,H,N,Dv] (fp32/fp16/bf16, Dk, Dv in 1..256); slopes [H] or None;
    initial_state [B or S,H,Dk,Dv]; cu_seqlens int [S+1] with B == 1.
    Returns (o [B,H,N,Dv] in q's dtype, fp32 final state [B or S,H,Dk,Dv] or None).
    chunk_size must be a power of two >= 16 (64 is the tuned default).
    """
    shape = check_inputs(q, k, v, slopes, initial_state, cu_seqlens)
    if q.dtype not in _SUPPORTED:
        raise ValueError(f"the Triton implementation takes fp32/fp16/bf16 inputs, got {q.dtype}")
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16, got {chunk_size}")
    s = slopes_or_zeros(slopes, shape.heads, q.device).detach().contiguous()  # no grad for slopes
    cfg = KernelConfig.make(shape.dk, shape.dv, q.dtype, chunk_size)
    table = ChunkTable.make(q.shape[0], shape.seq, None if cu_seqlens is None else cu_seqlens.to(q.device), chunk_size)
    return LightningAttnTriton.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), s, initial_state, float(scale),
        bool(output_final_state), table, cfg,
    )
