"""Triton Lightning Attention with autograd: `lightning_attn_triton`.

Forward (triton_fwd.py): per state window, the window's chunk states h_c, then its chunks'
outputs in parallel; or, with fwd_mode="block" (triton_fwd_block.py), one state per block of
chunks and output programs that carry the state through their block in registers.
Backward (triton_bwd.py): per window in reverse, recompute h_c from the
window's checkpoint, a reverse pass for the state gradients dh_c (seeded with the upstream
gradient of the final state), then dq, dk, dv in parallel over the window's chunks; or, with
bwd_mode="block" (triton_bwd_block.py), one state and one state gradient per block of chunks and
dq / dk / dv programs that carry h or dh through their block in registers.
Gradients flow to q, k, v and initial_state; slopes and cu_seqlens get none.
`lightning_workspace_bytes` gives the scratch memory of any shape (tested against the
buffers the launchers actually allocate).
"""

from __future__ import annotations

import torch

from .inputs import check_inputs, slopes_or_zeros
from .triton_bwd import lightning_backward
from .triton_bwd_block import bwd_block_supported, lightning_backward_block
from .triton_bwd_block import bwd_mode as pick_bwd_mode
from .triton_fwd import CHUNK, ChunkTable, KernelConfig, StateWindows, lightning_forward
from .triton_fwd_block import block_chunks as pick_block_chunks
from .triton_fwd_block import block_count, block_supported, lightning_forward_block
from .triton_fwd_block import fwd_mode as pick_fwd_mode

_SUPPORTED = (torch.float32, torch.float16, torch.bfloat16)


class LightningAttnTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, slopes, initial_state, scale, output_final_state, table, cfg, win, block, bwd_block):
        # q, k [B,H,T,Dk], v [B,H,T,Dv] contiguous; slopes fp32 [H]; initial_state [S,H,Dk,Dv] or None
        # block: None (chunk forward) or the chunks per block of the block forward (triton_fwd_block.py);
        # both return the same o, ht and checkpoints, so either backward follows either forward.
        # bwd_block: None (chunk backward, triton_bwd.py) or the chunks per block of the block backward
        # (triton_bwd_block.py, which recomputes its block states and ignores the checkpoints).
        h0 = initial_state.contiguous() if initial_state is not None else None
        if block is None:
            o, ht, ckpt = lightning_forward(q, k, v, slopes, h0, scale, table, cfg, win, output_final_state)
        else:
            o, ht, ckpt = lightning_forward_block(q, k, v, slopes, h0, scale, table, cfg, win,
                                                  output_final_state, block)
        # Saved: the inputs and one state per window (ckpt); the per-chunk states are recomputed
        # window by window in the backward, so no O(T * Dk * Dv / C) activation is kept.
        ctx.save_for_backward(q, k, v, slopes, h0, ckpt)
        ctx.scale, ctx.table, ctx.cfg, ctx.win, ctx.bwd_block = scale, table, cfg, win, bwd_block
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)  # an unused final state arrives as None, not zeros
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, slopes, h0, ckpt = ctx.saved_tensors
        do = torch.zeros_like(v) if do is None else do.contiguous().to(q.dtype)
        dht = None if dht is None else dht.contiguous()
        want_dh0 = h0 is not None and ctx.needs_input_grad[4]
        if ctx.bwd_block is None:
            dq, dk, dv, dh0 = lightning_backward(q, k, v, do, slopes, h0, dht, ckpt, ctx.scale, ctx.table, ctx.cfg,
                                                 ctx.win, want_dh0)
        else:
            dq, dk, dv, dh0 = lightning_backward_block(q, k, v, do, slopes, h0, dht, ctx.scale, ctx.table, ctx.cfg,
                                                       want_dh0, ctx.bwd_block)
        if dh0 is not None:
            dh0 = dh0.to(ctx.h0_dtype)
        return dq, dk, dv, None, dh0, None, None, None, None, None, None, None


def lightning_attn_triton(q, k, v, slopes=None, *, scale=1.0, initial_state=None,
                          output_final_state=False, cu_seqlens=None, chunk_size=CHUNK, state_window=None,
                          fwd_mode=None, bwd_mode=None, block_chunks=None):
    """Causal Lightning Attention on Triton; same contract as `lightning_attn` (see naive.py).

    q, k [B,H,N,Dk], v [B,H,N,Dv] (fp32/fp16/bf16, Dk, Dv in 1..256); slopes [H] or None;
    initial_state [B or S,H,Dk,Dv]; cu_seqlens int [S+1] with B == 1.
    Returns (o [B,H,N,Dv] in q's dtype, fp32 final state [B or S,H,Dk,Dv] or None).
    chunk_size must be a power of two >= 16 (64 is the tuned default). state_window: chunks
    per state window (None: from the memory budget, see `lightning_workspace_bytes`).
    fwd_mode: "chunk" (per-chunk states through memory, the default) or "block" (states carried
    in registers across blocks of chunks, triton_fwd_block.py; Dk > 128 runs "chunk"); None reads
    $VSUITE_LIGHTNING_FWD. bwd_mode: "chunk" (the default) or "block" (triton_bwd_block.py: block
    states recomputed, h and dh carried in registers; Dk or Dv > 128 run "chunk"), whichever forward
    ran; None reads $VSUITE_LIGHTNING_BWD. block_chunks: chunks per block (None: chosen from the shape).
    """
    shape = check_inputs(q, k, v, slopes, initial_state, cu_seqlens)
    mode = pick_fwd_mode(fwd_mode)
    bmode = pick_bwd_mode(bwd_mode)
    if block_chunks is not None and int(block_chunks) < 1:
        raise ValueError(f"block_chunks must be a positive number of chunks, got {block_chunks}")
    if q.dtype not in _SUPPORTED:
        raise ValueError(f"the Triton implementation takes fp32/fp16/bf16 inputs, got {q.dtype}")
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16, got {chunk_size}")
    s = slopes_or_zeros(slopes, shape.heads, q.device).detach().contiguous()  # no grad for slopes
    cfg = KernelConfig.make(shape.dk, shape.dv, q.dtype, chunk_size)
    if state_window is not None and int(state_window) < 1:
        raise ValueError(f"state_window must be a positive number of chunks, got {state_window}")
    table = ChunkTable.make(q.shape[0], shape.seq, None if cu_seqlens is None else cu_seqlens.to(q.device), chunk_size)
    qkv_bytes = (q.numel() + k.numel() + v.numel()) * q.element_size()
    win = StateWindows.make(table, shape.heads, shape.dk, shape.dv, qkv_bytes, state_window,
                            cfg.state_dtype.itemsize)
    block = None
    if mode == "block" and block_supported(shape.dk):
        block = pick_block_chunks(table.n_chunks, shape.heads, cfg.nv, block_chunks)
    bwd_block = None
    if bmode == "block" and bwd_block_supported(shape.dk, shape.dv):
        bwd_block = pick_block_chunks(table.n_chunks, shape.heads, cfg.nv, block_chunks)
    return LightningAttnTriton.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), s, initial_state, float(scale),
        bool(output_final_state), table, cfg, win, block, bwd_block,
    )


def lightning_workspace_bytes(batch: int, heads: int, seq: int, dk: int, dv: int, dtype=torch.bfloat16,
                              mode: str = "fwdbwd", *, seq_lens=None, chunk_size: int = CHUNK,
                              state_window: int | None = None, device: str = "cuda", fwd_mode: str | None = None,
                              bwd_mode: str | None = None, block_chunks: int | None = None) -> int:
    """Bytes of scratch memory the Triton kernels allocate for one call (outputs o, final state,
    dq, dk, dv and d(initial state) not counted; nor q, k, v, dO).

    mode "fwd": the forward (window state buffer h, checkpoints [windows-1, H, Dk, Dv], the
    latter kept for the backward). "bwd": the backward (h and dh window buffers, a two-slot
    state-gradient carry). "fwdbwd": both added, an upper bound of the extra peak of a training
    step (the forward's h is freed before the backward starts). seq_lens: the packed sequence
    lengths with cu_seqlens (batch must be 1). device "cuda": the compiled kernels, which keep
    the per-chunk states of bf16 inputs in bf16; "cpu": the interpreter (all states fp32).
    Checkpoints and carries are fp32. The window size follows the budget max(256 MiB,
    (q+k+v bytes) / 8) per state buffer. fwd_mode / block_chunks as in `lightning_attn_triton`:
    the block forward keeps one fp32 state per block of chunks instead of the window buffer h.
    bwd_mode as in `lightning_attn_triton`: the block backward keeps two fp32 states per block of
    chunks (block states and their gradients) instead of the h and dh window buffers.
    """
    if mode not in ("fwd", "bwd", "fwdbwd"):
        raise ValueError(f"mode must be fwd, bwd or fwdbwd, got {mode!r}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if seq_lens is None:
        n_chunks = batch * -(-seq // chunk_size)
    else:
        n_chunks = sum(-(-int(n) // chunk_size) for n in seq_lens)
    qkv_bytes = batch * heads * seq * (2 * dk + dv) * itemsize
    chunk_bytes = 2 if (dtype == torch.bfloat16 and str(device).startswith("cuda")) else 4
    size = StateWindows.window_chunks(heads, dk, dv, qkv_bytes, n_chunks, state_window, chunk_bytes)
    windows = max(1, -(-n_chunks // size))
    state = 4 * heads * dk * dv  # one fp32 [H, Dk, Dv] state (checkpoints, carries)
    per_chunk = chunk_bytes * heads * dk * dv  # one chunk's entry in a window buffer
    fwd = size * per_chunk + (windows - 1) * state
    if pick_fwd_mode(fwd_mode) == "block" and block_supported(dk):
        nv = KernelConfig.make(dk, dv, dtype, chunk_size).nv
        blocks = block_count(n_chunks, pick_block_chunks(n_chunks, heads, nv, block_chunks))
        fwd = (blocks + windows - 1) * state  # one fp32 state per block, and the checkpoints
    bwd = 2 * size * per_chunk + (2 * state if windows > 1 else 0)
    if pick_bwd_mode(bwd_mode) == "block" and bwd_block_supported(dk, dv):
        nv = KernelConfig.make(dk, dv, dtype, chunk_size).nv
        bwd = 2 * block_count(n_chunks, pick_block_chunks(n_chunks, heads, nv, block_chunks)) * state
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}[mode]
