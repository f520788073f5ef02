"""Triton forward of Lightning Attention with block-carried states (no per-chunk states in memory).

Same notation and results as triton_fwd.py (o, final state, window checkpoints for the
backward), different schedule. The global chunk range [0, G) is cut into blocks of NB chunks
(block b = chunks [b*NB, min(G, (b+1)*NB)); a block may hold the end of one sequence and the
start of others with cu_seqlens). Three passes:

1. `_blk_state_kernel`, grid (NK*NV, NBLK, H): the LOCAL state contribution S_b of the sequence
   that holds the block's last chunk, over that sequence's chunks inside the block, starting
   from zero (the recurrence of triton_fwd's state pass). Reads k, v once; one fp32 [Dk, Dv]
   per block and head.
2. `_blk_scan_kernel`, grid (NK*NV, H): a short sequential scan over the blocks,
   H_{b+1} = exp(-s * tokens_b) * H_b + S_b (H_b replaced by the sequence's initial state, or
   0, when that sequence starts inside block b), overwriting S_b in place with the state
   ENTERING block b (for the sequence that crosses the block start; unused otherwise).
3. `_blk_output_kernel`, grid (NV, NBLK, H): each program holds its block's start state
   [DKP, BV] in registers and walks the block's chunks in order:
       o_c = scale * (((Q K^T) * M) V + (Q * q_decay) h),   h <- exp(-s L) h + (K * k_decay)^T V
   resetting h to the initial state (or 0) where a new sequence begins, storing the final
   state where a sequence ends and the window checkpoints the backward needs where a chunk
   opens a state window (`StateWindows`) inside a sequence.

Bytes moved (B1 H32 N64K D128 bf16): pass 1 reads k, v (1 GiB) and writes 64 * 2 MiB of block
states; pass 3 reads q, k, v and writes o (2 GiB): ~3 GiB instead of the chunk path's ~5 GiB.
The whole Dk sits in one register tile (DKP = next power of two >= Dk, at least MIN_TILE), so
the block path takes Dk <= 128 (`block_supported`); larger Dk (LRPE's 2*D) use the chunk path.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .buffers import alloc
from .triton_fwd import (
    MIN_TILE,
    NUM_STAGES,
    ChunkTable,
    KernelConfig,
    _absorb_chunk,
    _dot,
    _dot_state,
    _intra_decay,
    _seq_bounds,
)

FWD_MODES = ("chunk", "block")
FWD_ENV = "VSUITE_LIGHTNING_FWD"  # benchmarks pick the forward with it; the keyword wins
BLOCK_MAX_DK = 128  # the output kernel keeps [DKP, BV] fp32 in registers: 128 x 64 is the largest tile
BLOCK_CHUNKS = 16  # chunks per block (1024 tokens at C = 64): the scan is G/16 steps
BLOCK_MIN_PROGRAMS = 1024  # fewer output programs than this: halve the block (more, shorter walks)
MAX_GRID_Y = 65535  # CUDA's limit on grid axis 1 (the block axis)
OUTPUT_STAGES = NUM_STAGES  # software-pipeline depth of the output kernel's chunk walk (a probe knob)


def fwd_mode(mode: str | None) -> str:
    """The forward to run: `mode`, else $VSUITE_LIGHTNING_FWD, else "chunk" (the measured default)."""
    chosen = mode if mode is not None else (os.environ.get(FWD_ENV) or "chunk")
    if chosen not in FWD_MODES:
        src = "fwd_mode" if mode is not None else FWD_ENV
        raise ValueError(f"{src} must be one of {FWD_MODES}, got {chosen!r}")
    return chosen


def block_tile_k(dk: int) -> int:
    """Register tile over the whole Dk in the output kernel (padded like KernelConfig's tiles)."""
    return max(MIN_TILE, triton.next_power_of_2(dk))


def block_supported(dk: int) -> bool:
    return block_tile_k(dk) <= BLOCK_MAX_DK


def block_chunks(n_chunks: int, heads: int, nv: int, nb: int | None = None) -> int:
    """Chunks per block. Default BLOCK_CHUNKS, halved (down to 2) while the output pass would
    run fewer than BLOCK_MIN_PROGRAMS programs (short inputs: parallelism over walk length);
    grown if the block count would pass the grid limit."""
    if nb is None:
        nb = BLOCK_CHUNKS
        while nb > 2 and nv * triton.cdiv(max(n_chunks, 1), nb) * heads < BLOCK_MIN_PROGRAMS:
            nb //= 2
    nb = max(1, int(nb))
    while triton.cdiv(n_chunks, nb) > MAX_GRID_Y:
        nb *= 2
    return nb


def block_count(n_chunks: int, nb: int) -> int:
    return triton.cdiv(n_chunks, nb)


# ----------------------------------------------------------------------------------------------
# Device helpers
# ----------------------------------------------------------------------------------------------


@triton.jit
def _chunk_where(g, cu, chunk_off, chunk_seq, T, C: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Global chunk g -> (sequence, local chunk c, sequence's chunk count nt, batch row, first
    and end token of the sequence)."""
    if IS_VARLEN:
        i_n = tl.load(chunk_seq + g).to(tl.int32)
        c = g - tl.load(chunk_off + i_n).to(tl.int32)
    else:
        nt0 = tl.cdiv(T, C)
        i_n = g // nt0
        c = g % nt0
    row, bos, eos = _seq_bounds(i_n, cu, T, IS_VARLEN)
    nt = tl.cdiv(eos - bos, C)
    return i_n, c, nt, row, bos, eos


@triton.jit
def _operand(x, LOWP: tl.constexpr):
    """A loaded q/k/v tile as a dot operand. LOWP: kept in its fp16/bf16 dtype (every dot casts it
    back to that dtype and products with fp32 decays promote, so the results are the same bits
    while the tile takes half the registers: the output kernel's [C, DKP] q and [DKP, C] k spilled
    as fp32 at D = 128). Otherwise fp32 (the interpreter's bf16 arithmetic is unreliable)."""
    if LOWP:
        return x
    else:
        return x.to(tl.float32)


# ----------------------------------------------------------------------------------------------
# Pass 1: local state of each block
# ----------------------------------------------------------------------------------------------


@triton.jit
def _blk_state_kernel(
    k, v, slopes, hb, cu, chunk_off, chunk_seq,
    T, H, G, NB,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NK: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK*NV, NBLK, H). k [B*H*T, DK], v [B*H*T, DV]; hb [NBLK, H, DK, DV] fp32:
    # hb[b] = sum over the chunks of block b that belong to the sequence of its last chunk of
    # the state contributions, decayed to the end of the block, from a zero start.
    i_kv, i_b, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_k, i_v = i_kv % NK, i_kv // NK
    ga = i_b * NB
    gl = tl.minimum(G, ga + NB) - 1  # the block's last chunk
    i_n, cl, nt, row, bos, eos = _chunk_where(gl, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
    c_lo = tl.maximum(ga - (gl - cl), 0)  # first local chunk of that sequence inside the block
    slope = tl.load(slopes + i_h).to(tl.float32)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
    tok0 = (row * H + i_h).to(tl.int64) * T + bos

    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for c in range(c_lo, cl + 1):
        b_h = _absorb_chunk(b_h, k, v, tok0 + c * C, tl.minimum(C, eos - bos - c * C), o_k, o_v, slope,
                            DK, DV, C, LOWP, PREC)
    tl.store(hb + (i_b.to(tl.int64) * H + i_h) * DK * DV + o_k[:, None] * DV + o_v[None, :], b_h, mask=m_kv)


# ----------------------------------------------------------------------------------------------
# Pass 2: scan over blocks
# ----------------------------------------------------------------------------------------------


@triton.jit
def _blk_scan_kernel(
    slopes, h0, hb, cu, chunk_off, chunk_seq,
    T, H, G, NB, NBLK,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NK: tl.constexpr, USE_H0: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    # grid (NK*NV, H). hb [NBLK, H, DK, DV] fp32, in place: S_b in, state entering block b out
    # (of the sequence holding chunk b*NB, valid when that chunk is not the sequence's first).
    # h0 [S, H, DK, DV].
    i_kv, i_h = tl.program_id(0), tl.program_id(1)
    i_k, i_v = i_kv % NK, i_kv // NK
    slope = tl.load(slopes + i_h).to(tl.float32)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
    tile = o_k[:, None] * DV + o_v[None, :]

    b_h = tl.zeros([BK, BV], dtype=tl.float32)  # state entering block b
    for b in range(0, NBLK):
        ga = b * NB
        gl = tl.minimum(G, ga + NB) - 1
        i_n, cl, nt, row, bos, eos = _chunk_where(gl, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
        g0 = gl - cl  # the sequence's first global chunk
        ptr = hb + (b * H + i_h).to(tl.int64) * DK * DV + tile
        b_s = tl.load(ptr, mask=m_kv, other=0.0)
        tl.store(ptr, b_h, mask=m_kv)
        if g0 >= ga:  # the sequence starts inside this block: from its initial state
            if USE_H0:
                b_h = tl.load(h0 + (i_n * H + i_h).to(tl.int64) * DK * DV + tile, mask=m_kv,
                              other=0.0).to(tl.float32)
            else:
                b_h = tl.zeros([BK, BV], dtype=tl.float32)
        first_tok = bos + tl.maximum(ga - g0, 0) * C
        n_tok = tl.minimum(eos, bos + (cl + 1) * C) - first_tok  # its tokens inside the block
        b_h = b_h * tl.exp(-slope * n_tok.to(tl.float32)) + b_s


# ----------------------------------------------------------------------------------------------
# Pass 3: outputs, walking each block with the state in registers
# ----------------------------------------------------------------------------------------------


@triton.jit
def _blk_output_kernel(
    q, k, v, slopes, h0, hb, o, ht, ckpt, cu, chunk_off, chunk_seq,
    scale, T, H, G, NB, WS,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, DKP: tl.constexpr, BV: tl.constexpr,
    USE_H0: tl.constexpr, STORE_HT: tl.constexpr, STORE_CKPT: tl.constexpr, IS_VARLEN: tl.constexpr,
    LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NV, NBLK, H). q, k [B*H*T, DK]; v, o [B*H*T, DV]; hb [NBLK, H, DK, DV] (state entering
    # each block, from the scan); h0, ht [S, H, DK, DV]; ckpt [windows-1, H, DK, DV]: ckpt[w-1] =
    # state entering chunk w*WS for the sequence that crosses it (what triton_fwd writes).
    i_v, i_b, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    ga = i_b * NB
    gb = tl.minimum(G, ga + NB)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    o_k = tl.arange(0, DKP)  # the whole Dk in one tile
    m_k = o_k < DK
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    tile = o_k[:, None] * DV + o_v[None, :]  # [DKP, BV] offsets inside one state
    j = tl.arange(0, C)
    q_decay = tl.exp(-slope * (j + 1).to(tl.float32))
    m_intra = _intra_decay(slope, C)

    # [DKP, BV] fp32, carried across the block's chunks (replaced where a sequence begins)
    b_h = tl.load(hb + (i_b.to(tl.int64) * H + i_h) * DK * DV + tile, mask=m_kv, other=0.0)
    for g in range(ga, gb):
        i_n, c, nt, row, bos, eos = _chunk_where(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
        seq_state = (i_n * H + i_h).to(tl.int64) * DK * DV
        if c == 0:
            if USE_H0:
                b_h = tl.load(h0 + seq_state + tile, mask=m_kv, other=0.0).to(tl.float32)
            else:
                b_h = tl.zeros([DKP, BV], dtype=tl.float32)
        if STORE_CKPT:
            if (c > 0) & (g % WS == 0):  # a state window opens inside this sequence
                tl.store(ckpt + ((g // WS - 1) * H + i_h).to(tl.int64) * DK * DV + tile, b_h, mask=m_kv)
        L = tl.minimum(C, eos - bos - c * C)
        m_t = j < L
        rows = (row * H + i_h).to(tl.int64) * T + bos + c * C + j  # [C]
        b_q = _operand(tl.load(q + rows[:, None] * DK + o_k[None, :], mask=m_t[:, None] & m_k[None, :],
                               other=0.0), LOWP)  # [C, DKP]
        b_kt = _operand(tl.load(k + rows[None, :] * DK + o_k[:, None], mask=m_k[:, None] & m_t[None, :],
                                other=0.0), LOWP)  # [DKP, C]
        b_v = _operand(tl.load(v + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & m_v[None, :],
                               other=0.0), LOWP)  # [C, BV]
        b_s = _dot(b_q, b_kt, LOWP, DT, PREC) * m_intra  # [C, C]
        b_o = (_dot_state(b_q, b_h, LOWP, DT, PREC) * q_decay[:, None] + _dot(b_s, b_v, LOWP, DT, PREC)) * scale
        tl.store(o + rows[:, None] * DV + o_v[None, :], b_o.to(o.dtype.element_ty),
                 mask=m_t[:, None] & m_v[None, :])
        k_decay = tl.where(m_t, tl.exp(-slope * tl.maximum(L - 1 - j, 0).to(tl.float32)), 0.0)
        b_h = b_h * tl.exp(-slope * L.to(tl.float32)) + _dot(b_kt, b_v * k_decay[:, None], LOWP, DT, PREC)
        if STORE_HT:
            if c == nt - 1:  # the sequence ends here
                tl.store(ht + seq_state + tile, b_h, mask=m_kv)


@triton.jit
def _blk_empty_kernel(
    h0, ht, cu, T, H,
    DK: tl.constexpr, DV: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, NK: tl.constexpr,
    USE_H0: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    # grid (S*H, NK*NV): the final state of a sequence without tokens is its initial state (or 0).
    i_nh, i_kv = tl.program_id(0), tl.program_id(1)
    i_k, i_v = i_kv % NK, i_kv // NK
    i_n, i_h = i_nh // H, i_nh % H
    row, bos, eos = _seq_bounds(i_n, cu, T, IS_VARLEN)
    if eos == bos:
        o_k = i_k * BK + tl.arange(0, BK)
        o_v = i_v * BV + tl.arange(0, BV)
        m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
        tile = (i_n * H + i_h).to(tl.int64) * DK * DV + o_k[:, None] * DV + o_v[None, :]
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
        if USE_H0:
            b_h += tl.load(h0 + tile, mask=m_kv, other=0.0).to(tl.float32)
        tl.store(ht + tile, b_h, mask=m_kv)


# ----------------------------------------------------------------------------------------------
# Launcher
# ----------------------------------------------------------------------------------------------


def output_warps(cfg: KernelConfig) -> int:
    """The output kernel carries a [DKP, BV] fp32 state besides the chunk tiles: 8 warps spread
    it over twice the registers once the tile reaches 64 x 64 (see the ptxas report in the tests)."""
    return 8 if block_tile_k(cfg.dk) * cfg.bv >= 64 * 64 else cfg.num_warps


def lightning_forward_block(q, k, v, slopes, h0, scale: float, table: ChunkTable, cfg: KernelConfig, win,
                            store_final: bool, nb: int | None = None):
    """The block forward; same contract as `triton_fwd.lightning_forward` (o, final state or
    None, window checkpoints). q, k [B,H,T,Dk], v [B,H,T,Dv] contiguous, Dk <= BLOCK_MAX_DK.
    nb: chunks per block (None: `block_chunks`)."""
    B, H, T, _ = q.shape
    assert block_supported(cfg.dk), f"the block forward takes Dk <= {BLOCK_MAX_DK}, got {cfg.dk}"
    G = table.n_chunks
    nb = block_chunks(G, H, cfg.nv, nb)
    n_blk = block_count(G, nb)
    o = alloc(v.shape, q.dtype, q.device, role="out", tag="o")
    ht = alloc((table.n_seqs, H, cfg.dk, cfg.dv), torch.float32, q.device, role="out",
               tag="final_state") if store_final else None
    ckpt = alloc((win.count - 1, H, cfg.dk, cfg.dv), torch.float32, q.device, role="scratch", tag="checkpoints")
    hb = alloc((n_blk, H, cfg.dk, cfg.dv), torch.float32, q.device, role="scratch", tag="block_states")
    common = dict(DK=cfg.dk, DV=cfg.dv, C=cfg.chunk, IS_VARLEN=table.varlen)
    tables = (table.cu, table.chunk_off, table.chunk_seq)
    if n_blk * H:
        _blk_state_kernel[(cfg.nk * cfg.nv, n_blk, H)](
            k, v, slopes, hb, *tables, T, H, G, nb, BK=cfg.bk, BV=cfg.bv, NK=cfg.nk,
            LOWP=cfg.lowp, PREC=cfg.prec, num_warps=cfg.num_warps, num_stages=NUM_STAGES, **common,
        )
        _blk_scan_kernel[(cfg.nk * cfg.nv, H)](
            slopes, h0, hb, *tables, T, H, G, nb, n_blk, BK=cfg.bk, BV=cfg.bv, NK=cfg.nk,
            USE_H0=h0 is not None, num_warps=4, num_stages=NUM_STAGES, **common,
        )
        _blk_output_kernel[(cfg.nv, n_blk, H)](
            q, k, v, slopes, h0, hb, o, ht, ckpt, *tables, float(scale), T, H, G, nb, win.size,
            DKP=block_tile_k(cfg.dk), BV=cfg.bv, USE_H0=h0 is not None, STORE_HT=store_final,
            STORE_CKPT=win.count > 1, LOWP=cfg.lowp, PREC=cfg.prec, num_warps=output_warps(cfg),
            num_stages=OUTPUT_STAGES, **common,
        )
    if store_final and (table.varlen or T == 0) and table.n_seqs * H:
        common.pop("C")
        _blk_empty_kernel[(table.n_seqs * H, cfg.nk * cfg.nv)](
            h0, ht, table.cu, T, H, BK=cfg.bk, BV=cfg.bv, NK=cfg.nk, USE_H0=h0 is not None,
            num_warps=4, **common,
        )
    return o, ht, ckpt
