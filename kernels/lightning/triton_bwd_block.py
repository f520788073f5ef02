"""Triton backward of Lightning Attention with block-carried states (no per-chunk h_c or dh_c in memory).

Same gradients as triton_bwd.py (notation there and in triton_fwd.py: h_c the state entering chunk c,
dh_c := dLoss/d(state leaving chunk c)), another schedule. The global chunk range [0, G) is cut into
blocks of NB chunks as in the block forward (triton_fwd_block.py: a block may hold the end of one
sequence and the start of others with cu_seqlens). Passes:

1. Block start states H_b: the block forward's own state pass + scan (`_blk_state_kernel`,
   `_blk_scan_kernel`), recomputed here from k, v and the initial state, so the backward works
   whichever forward ran (the forward keeps nothing new; 4*H*Dk*Dv bytes per block).
2. `_bblk_dstate_kernel`, grid (NK*NV, NBLK, H): the LOCAL gradient D_b of the state entering
   block b, for the sequence that holds the block's FIRST chunk: its chunks inside the block walked
   in reverse, dh <- exp(-s L) dh + scale * (Q * q_decay)^T dO, from d(final state) if the sequence
   ends inside the block, else from zero.
3. `_bblk_dscan_kernel`, grid (NK*NV, H): a short reverse scan over the blocks. Carry = gradient of
   the state entering block b+1, which is the gradient leaving block b's last chunk when that chunk's
   sequence goes on (where it ends, the walks start from d(final state) instead); it overwrites D_b
   in place, and the carry becomes D_b + exp(-s * tokens_b) * carry when one sequence spans the whole
   block, else D_b (that sequence ends inside the block, D_b already holds its d(final state)).
4. `_bblk_dq_kernel`, grid (NK, NBLK, H): walks its block's chunks FORWARD carrying h [BK, DVP] in
   registers (reset to the initial state, or 0, where a sequence begins):
       dQ = scale * ((dO V^T) * M) K + scale * (dO h^T) * q_decay,   h <- exp(-s L) h + (K * k_decay)^T V
5. `_bblk_dk_kernel`, grid (NK, NBLK, H), and `_bblk_dv_kernel`, grid (NV, NBLK, H): walk their
   block's chunks in REVERSE carrying dh ([BK, DVP] resp. [DKP, BV]; reset to d(final state), or 0,
   where a sequence ends):
       dK = dP^T Q + (V dh^T) * k_decay,    dP^T = scale * (V dO^T) * M^T
       dV = scale * P^T dO + (K * k_decay) dh,  P^T = (K Q^T) * M^T
       dh <- exp(-s L) dh + scale * (Q * q_decay)^T dO
   The dk program stores d(initial state) where a sequence begins (it holds all of Dv for its Dk rows).
   Sequences without tokens get d(initial state) = d(final state) (or 0) from the forward's
   `_blk_empty_kernel`.

The dq and dk programs hold the whole Dv ([BK, DVP]), the dv program the whole Dk ([DKP, BV]), so the
block backward takes Dk, Dv <= 128 (`bwd_block_supported`); larger dims use the chunk backward.
Scratch: two fp32 [NBLK, H, Dk, Dv] (block states and block state gradients): 256 MiB at B1 H32 N64K
D128 (blocks of 16 chunks), instead of the chunk backward's two window buffers.
Bytes read at that shape (bf16, 64-wide tiles): state pass k, v; dstate pass q, dO; dq 2x(dO, v) + k;
dk 2x(dO, v) + q; dv 2x(q, k) + dO. Set `SPLIT_TILE` = 128 to read each once (bigger register tiles).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .buffers import alloc
from .triton_fwd import MIN_TILE, NUM_STAGES, ChunkTable, KernelConfig, _dot, _dot_state, _intra_decay
from .triton_fwd_block import (
    _blk_empty_kernel,
    _blk_scan_kernel,
    _blk_state_kernel,
    _chunk_where,
    _operand,
    block_chunks,
    block_count,
    block_tile_k,
)

BWD_MODES = ("chunk", "block")
BWD_ENV = "VSUITE_LIGHTNING_BWD"  # benchmarks pick the backward with it; the keyword wins
BWD_BLOCK_MAX_D = 128  # dq/dk hold [BK, DVP], dv [DKP, BV] fp32 in registers: 128 x 64 is the largest tile
SPLIT_TILE: int | None = None  # tile of the split side (Dk for dq/dk, Dv for dv); None: KernelConfig's (64)
WALK_STAGES = NUM_STAGES  # software-pipeline depth of the chunk walks (a probe knob)


def bwd_mode(mode: str | None) -> str:
    """The backward to run: `mode`, else $VSUITE_LIGHTNING_BWD, else "chunk" (the default until a GPU
    measures the block backward faster)."""
    chosen = mode if mode is not None else (os.environ.get(BWD_ENV) or "chunk")
    if chosen not in BWD_MODES:
        src = "bwd_mode" if mode is not None else BWD_ENV
        raise ValueError(f"{src} must be one of {BWD_MODES}, got {chosen!r}")
    return chosen


def bwd_block_supported(dk: int, dv: int) -> bool:
    return max(block_tile_k(dk), block_tile_k(dv)) <= BWD_BLOCK_MAX_D


def split_tiles(cfg: KernelConfig) -> tuple[int, int]:
    """(BK, BV) of the split side: KernelConfig's tiles, or SPLIT_TILE clipped to the padded dims."""
    if SPLIT_TILE is None:
        return cfg.bk, cfg.bv
    t = max(MIN_TILE, triton.next_power_of_2(int(SPLIT_TILE)))
    return min(t, block_tile_k(cfg.dk)), min(t, block_tile_k(cfg.dv))


def walk_warps(cfg: KernelConfig, full: int, split: int) -> int:
    """Like the block forward's output kernel: 8 warps once the carried tile reaches 64 x 64."""
    return 8 if full * split >= 64 * 64 else cfg.num_warps


# ----------------------------------------------------------------------------------------------
# Pass 2: local state gradient of each block
# ----------------------------------------------------------------------------------------------


@triton.jit
def _bblk_dstate_kernel(
    q, do, slopes, dht, dhb, cu, chunk_off, chunk_seq,
    scale, T, H, G, NB,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NK: tl.constexpr, USE_DHT: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK*NV, NBLK, H). q [B*H*T, DK], do [B*H*T, DV]; dht [S, H, DK, DV]; dhb [NBLK, H, DK, DV]
    # fp32: dhb[b] = gradient of the state entering chunk b*NB from that chunk's sequence's chunks
    # inside the block (and its d(final state) if it ends there).
    i_kv, i_b, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_k, i_v = i_kv % NK, i_kv // NK
    ga = i_b * NB
    gb = tl.minimum(G, ga + NB)
    i_n, c0, nt, row, bos, eos = _chunk_where(ga, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
    c_end = tl.minimum(nt, c0 + gb - ga)  # one past that sequence's last chunk inside the block
    slope = tl.load(slopes + i_h).to(tl.float32)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
    tile = o_k[:, None] * DV + o_v[None, :]
    j = tl.arange(0, C)
    q_decay = tl.exp(-slope * (j + 1).to(tl.float32)) * scale  # folds the output scale in
    tok0 = (row * H + i_h).to(tl.int64) * T + bos
    DT = q.dtype.element_ty

    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        if c_end == nt:  # the sequence ends inside this block
            b_dh += tl.load(dht + (i_n * H + i_h).to(tl.int64) * DK * DV + tile, mask=m_kv, other=0.0)
    for ci in range(0, c_end - c0):
        c = c_end - 1 - ci  # reverse order (a negative range step is avoided on purpose)
        L = tl.minimum(C, eos - bos - c * C)
        m_t = j < L
        rows = tok0 + c * C + j
        b_qt = _operand(tl.load(q + rows[None, :] * DK + o_k[:, None], mask=m_t[None, :] & (o_k[:, None] < DK),
                                other=0.0), LOWP)  # [BK, C]
        b_do = _operand(tl.load(do + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < DV),
                                other=0.0), LOWP)  # [C, BV]
        b_dh = b_dh * tl.exp(-slope * L.to(tl.float32)) + _dot(b_qt * q_decay[None, :], b_do, LOWP, DT, PREC)
    tl.store(dhb + (i_b.to(tl.int64) * H + i_h) * DK * DV + tile, b_dh, mask=m_kv)


# ----------------------------------------------------------------------------------------------
# Pass 3: reverse scan over blocks
# ----------------------------------------------------------------------------------------------


@triton.jit
def _bblk_dscan_kernel(
    slopes, dhb, cu, chunk_off, chunk_seq,
    T, H, G, NB, NBLK,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NK: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    # grid (NK*NV, H). dhb [NBLK, H, DK, DV] fp32, in place: D_b in, gradient of the state leaving
    # block b's last chunk out, for that chunk's sequence where it goes on into block b+1 (elsewhere
    # unused: the walks start from d(final state) where a sequence ends).
    i_kv, i_h = tl.program_id(0), tl.program_id(1)
    i_k, i_v = i_kv % NK, i_kv // NK
    slope = tl.load(slopes + i_h).to(tl.float32)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
    tile = o_k[:, None] * DV + o_v[None, :]

    b_carry = tl.zeros([BK, BV], dtype=tl.float32)  # gradient of the state entering block b+1
    for bi in range(0, NBLK):
        b = NBLK - 1 - bi
        ga = b * NB
        gl = tl.minimum(G, ga + NB) - 1
        i_n, cl, nt, row, bos, eos = _chunk_where(gl, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
        ptr = dhb + (b * H + i_h).to(tl.int64) * DK * DV + tile
        b_loc = tl.load(ptr, mask=m_kv, other=0.0)
        tl.store(ptr, b_carry, mask=m_kv)
        if (cl < nt - 1) & (gl - cl <= ga):  # one sequence through the whole block, full chunks
            b_carry = b_loc + b_carry * tl.exp(-slope * ((gl - ga + 1) * C).to(tl.float32))
        else:  # the block's first chunk's sequence ends inside it (D_b holds its d(final state))
            b_carry = b_loc


# ----------------------------------------------------------------------------------------------
# Pass 4: dq, walking each block forward with h in registers
# ----------------------------------------------------------------------------------------------


@triton.jit
def _bblk_dq_kernel(
    k, v, do, slopes, h0, hb, dq, cu, chunk_off, chunk_seq,
    scale, T, H, G, NB,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, DVP: tl.constexpr,
    USE_H0: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK, NBLK, H). k, dq [B*H*T, DK]; v, do [B*H*T, DV]; hb [NBLK, H, DK, DV] (state entering
    # each block, from the forward's scan); h0 [S, H, DK, DV]. Carries h[k-tile, all Dv].
    i_k, i_b, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    ga = i_b * NB
    gb = tl.minimum(G, ga + NB)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = k.dtype.element_ty

    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < DK
    o_v = tl.arange(0, DVP)  # the whole Dv in one tile
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    tile = o_k[:, None] * DV + o_v[None, :]  # [BK, DVP]
    j = tl.arange(0, C)
    q_decay = tl.exp(-slope * (j + 1).to(tl.float32)) * scale
    m_intra = _intra_decay(slope, C) * scale

    b_h = tl.load(hb + (i_b.to(tl.int64) * H + i_h) * DK * DV + tile, mask=m_kv, other=0.0)
    for g in range(ga, gb):
        i_n, c, nt, row, bos, eos = _chunk_where(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
        if c == 0:
            if USE_H0:
                b_h = tl.load(h0 + (i_n * H + i_h).to(tl.int64) * DK * DV + tile, mask=m_kv,
                              other=0.0).to(tl.float32)
            else:
                b_h = tl.zeros([BK, DVP], dtype=tl.float32)
        L = tl.minimum(C, eos - bos - c * C)
        m_t = j < L
        rows = (row * H + i_h).to(tl.int64) * T + bos + c * C + j  # [C]
        m_tv = m_t[:, None] & m_v[None, :]
        b_do = _operand(tl.load(do + rows[:, None] * DV + o_v[None, :], mask=m_tv, other=0.0), LOWP)  # [C, DVP]
        b_vt = _operand(tl.load(v + rows[None, :] * DV + o_v[:, None], mask=m_v[:, None] & m_t[None, :],
                                other=0.0), LOWP)  # [DVP, C]
        b_k = _operand(tl.load(k + rows[:, None] * DK + o_k[None, :], mask=m_t[:, None] & m_k[None, :],
                               other=0.0), LOWP)  # [C, BK]
        b_dp = _dot(b_do, b_vt, LOWP, DT, PREC) * m_intra  # [C, C], scale folded in
        b_dq = _dot(b_dp, b_k, LOWP, DT, PREC) + _dot_state(b_do, tl.trans(b_h), LOWP, DT, PREC) * q_decay[:, None]
        tl.store(dq + rows[:, None] * DK + o_k[None, :], b_dq.to(dq.dtype.element_ty),
                 mask=m_t[:, None] & m_k[None, :])
        k_decay = tl.where(m_t, tl.exp(-slope * tl.maximum(L - 1 - j, 0).to(tl.float32)), 0.0)
        b_h = b_h * tl.exp(-slope * L.to(tl.float32)) + _dot(tl.trans(b_k * k_decay[:, None]), tl.trans(b_vt),
                                                             LOWP, DT, PREC)


# ----------------------------------------------------------------------------------------------
# Pass 5: dk and dv, walking each block in reverse with dh in registers
# ----------------------------------------------------------------------------------------------


@triton.jit
def _bblk_dk_kernel(
    q, v, do, slopes, dht, dhb, dk, dh0, cu, chunk_off, chunk_seq,
    scale, T, H, G, NB,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, DVP: tl.constexpr,
    USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr,
    PREC: tl.constexpr,
):
    # grid (NK, NBLK, H). q, dk [B*H*T, DK]; v, do [B*H*T, DV]; dhb [NBLK, H, DK, DV] (gradient of the
    # state leaving each block's last chunk, from the reverse scan); dht, dh0 [S, H, DK, DV].
    # Carries dh[k-tile, all Dv]; writes d(initial state) where a sequence begins.
    i_k, i_b, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    ga = i_b * NB
    gb = tl.minimum(G, ga + NB)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < DK
    o_v = tl.arange(0, DVP)
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    tile = o_k[:, None] * DV + o_v[None, :]  # [BK, DVP]
    j = tl.arange(0, C)
    q_decay = tl.exp(-slope * (j + 1).to(tl.float32)) * scale
    m_intra_t = tl.trans(_intra_decay(slope, C)) * scale  # M^T[j, i] = M[i, j]

    b_dh = tl.load(dhb + (i_b.to(tl.int64) * H + i_h) * DK * DV + tile, mask=m_kv, other=0.0)
    for gi in range(0, gb - ga):
        g = gb - 1 - gi  # reverse order
        i_n, c, nt, row, bos, eos = _chunk_where(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
        seq_state = (i_n * H + i_h).to(tl.int64) * DK * DV
        if c == nt - 1:  # the sequence ends here: from its final-state gradient
            if USE_DHT:
                b_dh = tl.load(dht + seq_state + tile, mask=m_kv, other=0.0)
            else:
                b_dh = tl.zeros([BK, DVP], dtype=tl.float32)
        L = tl.minimum(C, eos - bos - c * C)
        m_t = j < L
        rows = (row * H + i_h).to(tl.int64) * T + bos + c * C + j
        m_tk = m_t[:, None] & m_k[None, :]
        b_v = _operand(tl.load(v + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & m_v[None, :],
                               other=0.0), LOWP)  # [C, DVP]
        b_dot = _operand(tl.load(do + rows[None, :] * DV + o_v[:, None], mask=m_v[:, None] & m_t[None, :],
                                 other=0.0), LOWP)  # [DVP, C] (dO^T)
        b_q = _operand(tl.load(q + rows[:, None] * DK + o_k[None, :], mask=m_tk, other=0.0), LOWP)  # [C, BK]
        b_dpt = _dot(b_v, b_dot, LOWP, DT, PREC) * m_intra_t  # dP^T [C, C], scale folded in
        k_decay = tl.where(m_t, tl.exp(-slope * tl.maximum(L - 1 - j, 0).to(tl.float32)), 0.0)
        b_dk = _dot(b_dpt, b_q, LOWP, DT, PREC) + _dot_state(b_v, tl.trans(b_dh), LOWP, DT, PREC) * k_decay[:, None]
        tl.store(dk + rows[:, None] * DK + o_k[None, :], b_dk.to(dk.dtype.element_ty), mask=m_tk)
        b_dh = b_dh * tl.exp(-slope * L.to(tl.float32)) + _dot(tl.trans(b_q * q_decay[:, None]), tl.trans(b_dot),
                                                               LOWP, DT, PREC)
        if STORE_DH0:
            if c == 0:  # the sequence begins here: b_dh is the gradient of its initial state
                tl.store(dh0 + seq_state + tile, b_dh, mask=m_kv)


@triton.jit
def _bblk_dv_kernel(
    q, k, do, slopes, dht, dhb, dv, cu, chunk_off, chunk_seq,
    scale, T, H, G, NB,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, DKP: tl.constexpr, BV: tl.constexpr,
    USE_DHT: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NV, NBLK, H). q, k [B*H*T, DK]; do, dv [B*H*T, DV]; dhb, dht as in the dk kernel.
    # Carries dh[all Dk, v-tile].
    i_v, i_b, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    ga = i_b * NB
    gb = tl.minimum(G, ga + NB)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    o_k = tl.arange(0, DKP)
    m_k = o_k < DK
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    tile = o_k[:, None] * DV + o_v[None, :]  # [DKP, BV]
    j = tl.arange(0, C)
    q_decay = tl.exp(-slope * (j + 1).to(tl.float32)) * scale
    m_intra_t = tl.trans(_intra_decay(slope, C)) * scale

    b_dh = tl.load(dhb + (i_b.to(tl.int64) * H + i_h) * DK * DV + tile, mask=m_kv, other=0.0)
    for gi in range(0, gb - ga):
        g = gb - 1 - gi
        i_n, c, nt, row, bos, eos = _chunk_where(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
        if c == nt - 1:
            if USE_DHT:
                b_dh = tl.load(dht + (i_n * H + i_h).to(tl.int64) * DK * DV + tile, mask=m_kv, other=0.0)
            else:
                b_dh = tl.zeros([DKP, BV], dtype=tl.float32)
        L = tl.minimum(C, eos - bos - c * C)
        m_t = j < L
        rows = (row * H + i_h).to(tl.int64) * T + bos + c * C + j
        m_tv = m_t[:, None] & m_v[None, :]
        b_k = _operand(tl.load(k + rows[:, None] * DK + o_k[None, :], mask=m_t[:, None] & m_k[None, :],
                               other=0.0), LOWP)  # [C, DKP]
        b_qt = _operand(tl.load(q + rows[None, :] * DK + o_k[:, None], mask=m_k[:, None] & m_t[None, :],
                                other=0.0), LOWP)  # [DKP, C]
        b_do = _operand(tl.load(do + rows[:, None] * DV + o_v[None, :], mask=m_tv, other=0.0), LOWP)  # [C, BV]
        b_pt = _dot(b_k, b_qt, LOWP, DT, PREC) * m_intra_t  # scale * P^T [C, C]
        k_decay = tl.where(m_t, tl.exp(-slope * tl.maximum(L - 1 - j, 0).to(tl.float32)), 0.0)
        b_dv = _dot(b_pt, b_do, LOWP, DT, PREC) + _dot_state(b_k, b_dh, LOWP, DT, PREC) * k_decay[:, None]
        tl.store(dv + rows[:, None] * DV + o_v[None, :], b_dv.to(dv.dtype.element_ty), mask=m_tv)
        b_dh = b_dh * tl.exp(-slope * L.to(tl.float32)) + _dot(b_qt * q_decay[None, :], b_do, LOWP, DT, PREC)


# ----------------------------------------------------------------------------------------------
# Launcher
# ----------------------------------------------------------------------------------------------


def lightning_backward_block(q, k, v, do, slopes, h0, dht, scale: float, table: ChunkTable, cfg: KernelConfig,
                             want_dh0: bool, nb: int | None = None):
    """The block backward; same contract as `triton_bwd.lightning_backward` minus the checkpoints (it
    recomputes one state per block instead). q, k [B,H,T,Dk], v, do [B,H,T,Dv] contiguous, Dk, Dv <= 128;
    h0, dht [S,H,Dk,Dv] or None. nb: chunks per block (None: `block_chunks`).
    Returns (dq, dk, dv in the input dtype, d(initial state) fp32 or None)."""
    B, H, T, _ = q.shape
    assert bwd_block_supported(cfg.dk, cfg.dv), f"the block backward takes Dk, Dv <= {BWD_BLOCK_MAX_D}"
    G = table.n_chunks
    nb = block_chunks(G, H, cfg.nv, nb)
    n_blk = block_count(G, nb)
    dq = alloc(q.shape, q.dtype, q.device, role="out", tag="dq")
    dk = alloc(k.shape, k.dtype, k.device, role="out", tag="dk")
    dv = alloc(v.shape, v.dtype, v.device, role="out", tag="dv")
    dh0 = alloc((table.n_seqs, H, cfg.dk, cfg.dv), torch.float32, q.device, role="out",
                tag="d_initial_state") if want_dh0 else None
    hb = alloc((n_blk, H, cfg.dk, cfg.dv), torch.float32, q.device, role="scratch", tag="block_states")
    dhb = alloc((n_blk, H, cfg.dk, cfg.dv), torch.float32, q.device, role="scratch", tag="block_dstates")
    common = dict(DK=cfg.dk, DV=cfg.dv, C=cfg.chunk, IS_VARLEN=table.varlen)
    tables = (table.cu, table.chunk_off, table.chunk_seq)
    state_tiles = dict(BK=cfg.bk, BV=cfg.bv, NK=cfg.nk)
    bk, bv = split_tiles(cfg)
    dkp, dvp = block_tile_k(cfg.dk), block_tile_k(cfg.dv)
    nk, nv = triton.cdiv(cfg.dk, bk), triton.cdiv(cfg.dv, bv)
    if n_blk * H:
        # 1. block start states (the block forward's passes 1 and 2)
        _blk_state_kernel[(cfg.nk * cfg.nv, n_blk, H)](
            k, v, slopes, hb, *tables, T, H, G, nb, LOWP=cfg.lowp, PREC=cfg.prec,
            num_warps=cfg.num_warps, num_stages=NUM_STAGES, **state_tiles, **common,
        )
        _blk_scan_kernel[(cfg.nk * cfg.nv, H)](
            slopes, h0, hb, *tables, T, H, G, nb, n_blk, USE_H0=h0 is not None, num_warps=4,
            num_stages=NUM_STAGES, **state_tiles, **common,
        )
        # 2, 3. block state gradients
        _bblk_dstate_kernel[(cfg.nk * cfg.nv, n_blk, H)](
            q, do, slopes, dht, dhb, *tables, float(scale), T, H, G, nb, USE_DHT=dht is not None,
            LOWP=cfg.lowp, PREC=cfg.prec, num_warps=cfg.num_warps, num_stages=NUM_STAGES, **state_tiles, **common,
        )
        _bblk_dscan_kernel[(cfg.nk * cfg.nv, H)](
            slopes, dhb, *tables, T, H, G, nb, n_blk, num_warps=4,
            num_stages=NUM_STAGES, **state_tiles, **common,
        )
        # 4, 5. the walks
        walk = dict(LOWP=cfg.lowp, PREC=cfg.prec, num_stages=WALK_STAGES, **common)
        _bblk_dq_kernel[(nk, n_blk, H)](
            k, v, do, slopes, h0, hb, dq, *tables, float(scale), T, H, G, nb, BK=bk, DVP=dvp,
            USE_H0=h0 is not None, num_warps=walk_warps(cfg, dvp, bk), **walk,
        )
        _bblk_dk_kernel[(nk, n_blk, H)](
            q, v, do, slopes, dht, dhb, dk, dh0, *tables, float(scale), T, H, G, nb, BK=bk, DVP=dvp,
            USE_DHT=dht is not None, STORE_DH0=want_dh0, num_warps=walk_warps(cfg, dvp, bk), **walk,
        )
        _bblk_dv_kernel[(nv, n_blk, H)](
            q, k, do, slopes, dht, dhb, dv, *tables, float(scale), T, H, G, nb, DKP=dkp, BV=bv,
            USE_DHT=dht is not None, num_warps=walk_warps(cfg, dkp, bv), **walk,
        )
    if want_dh0 and (table.varlen or T == 0) and table.n_seqs * H:
        # sequences without tokens: d(initial state) = d(final state), or 0 (the forward's empty kernel)
        common.pop("C")
        _blk_empty_kernel[(table.n_seqs * H, cfg.nk * cfg.nv)](
            dht, dh0, table.cu, T, H, USE_H0=dht is not None, num_warps=4, **state_tiles, **common,
        )
    return dq, dk, dv, dh0
