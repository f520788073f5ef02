"""Triton backward of Lightning Attention: a reverse state pass, then chunk-parallel grads.

With the forward's notation (see triton_fwd.py) and dh_c := dLoss/d(state leaving chunk c):

    dh_{last}  = d(final state)  (or 0)
    dh_{c-1}   = exp(-s L_c) dh_c + scale * (Q_c * q_decay)^T dO_c       (reverse over chunks)
    d(initial state) = the value after the last (first-in-time) step

and inside chunk c, with dP = scale * (dO V^T) * M and P = (Q K^T) * M:

    dQ = dP K + scale * (dO h_c^T) * q_decay          (h_c: state entering chunk c)
    dK = dP^T Q + (V dh_c^T) * k_decay
    dV = scale * P^T dO + (K * k_decay) dh_c

Kernels:
  `_bwd_dstate_kernel`  grid (NK, NV, S*H): walks chunks backwards, writes dh_c for every
                        chunk into a [G, H, Dk, Dv] fp32 buffer and d(initial state).
  `_bwd_dqk_kernel`     grid (NK, G, H): dQ, dK for one Dk tile, contracting Dv in tiles.
  `_bwd_dv_kernel`      grid (NV, G, H): dV for one Dv tile, contracting Dk in tiles.
The chunk states h_c are recomputed with the forward's pass 1 (cheap, reads k and v once)
rather than saved, so training keeps only q, k, v per layer.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_fwd import (
    NUM_STAGES,
    ChunkTable,
    KernelConfig,
    _chunk_coords,
    _dot,
    _dot_state,
    _first_chunk,
    _intra_decay,
    _seq_bounds,
)


@triton.jit
def _bwd_dstate_kernel(
    q, do, slopes, dht, dh, dh0, cu, chunk_off,
    scale, T, H,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_VARLEN: tl.constexpr,
    LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK, NV, S*H). q [B*H*T, DK], do [B*H*T, DV]; dh [G, H, DK, DV] fp32 (gradient
    # of the state leaving each chunk); dht, dh0 [S, H, DK, DV].
    i_k, i_v, i_nh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    row, bos, eos = _seq_bounds(i_n, cu, T, IS_VARLEN)
    g0 = _first_chunk(i_n, chunk_off, T, C, IS_VARLEN)
    slope = tl.load(slopes + i_h).to(tl.float32)

    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    j = tl.arange(0, C)
    m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
    tile = o_k[:, None] * DV + o_v[None, :]
    tok0 = (row * H + i_h).to(tl.int64) * T + bos
    q_decay = tl.exp(-slope * (j + 1).to(tl.float32)) * scale  # folds the output scale in

    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        b_dh += tl.load(dht + i_nh.to(tl.int64) * DK * DV + tile, mask=m_kv, other=0.0).to(tl.float32)

    nt = tl.cdiv(eos - bos, C)
    for ci in range(0, nt):
        c = nt - 1 - ci  # reverse order (a negative range step is avoided on purpose)
        tl.store(dh + ((g0 + c).to(tl.int64) * H + i_h) * DK * DV + tile, b_dh, mask=m_kv)
        L = tl.minimum(C, eos - bos - c * C)
        m_t = j < L
        rows = tok0 + c * C + j
        b_qt = tl.load(q + rows[None, :] * DK + o_k[:, None], mask=m_t[None, :] & (o_k[:, None] < DK),
                       other=0.0).to(tl.float32)  # [BK, C]
        b_do = tl.load(do + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < DV),
                       other=0.0).to(tl.float32)  # [C, BV]
        b_dh = b_dh * tl.exp(-slope * L.to(tl.float32)) + _dot(
            b_qt * q_decay[None, :], b_do, LOWP, q.dtype.element_ty, PREC)

    if STORE_DH0:
        tl.store(dh0 + i_nh.to(tl.int64) * DK * DV + tile, b_dh, mask=m_kv)


@triton.jit
def _bwd_dqk_kernel(
    q, k, v, do, slopes, h, dh, dq, dk, cu, chunk_off, chunk_seq,
    scale, T, H,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NV: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK, G, H). Contract Dv in tiles: dO V^T [C, C], dO h_c^T [C, BK], V dh_c^T [C, BK].
    i_k, g, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    row, t0, L = _chunk_coords(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    j = tl.arange(0, C)
    m_t = j < L
    rows = (row * H + i_h).to(tl.int64) * T + t0 + j
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < DK
    state = (g.to(tl.int64) * H + i_h) * DK * DV

    b_dp = tl.zeros([C, C], dtype=tl.float32)
    b_dq = tl.zeros([C, BK], dtype=tl.float32)
    b_dk = tl.zeros([C, BK], dtype=tl.float32)
    for i_v in range(NV):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < DV
        m_tv = m_t[:, None] & m_v[None, :]
        b_do = tl.load(do + rows[:, None] * DV + o_v[None, :], mask=m_tv, other=0.0).to(tl.float32)  # [C, BV]
        b_vt = tl.load(v + rows[None, :] * DV + o_v[:, None], mask=m_v[:, None] & m_t[None, :],
                       other=0.0).to(tl.float32)  # [BV, C]
        m_vk = m_v[:, None] & m_k[None, :]
        # h_c^T and dh_c^T tiles, [BV, BK], loaded transposed
        b_ht = tl.load(h + state + o_k[None, :] * DV + o_v[:, None], mask=m_vk, other=0.0)
        b_dht = tl.load(dh + state + o_k[None, :] * DV + o_v[:, None], mask=m_vk, other=0.0)
        b_dp += _dot(b_do, b_vt, LOWP, DT, PREC)
        b_dq += _dot_state(b_do, b_ht, LOWP, DT, PREC)
        b_dk += _dot_state(tl.trans(b_vt), b_dht, LOWP, DT, PREC)

    q_decay = tl.exp(-slope * (j + 1).to(tl.float32))
    k_decay = tl.where(m_t, tl.exp(-slope * tl.maximum(L - 1 - j, 0).to(tl.float32)), 0.0)
    b_dp = b_dp * _intra_decay(slope, C) * scale
    m_tk = m_t[:, None] & m_k[None, :]
    b_q = tl.load(q + rows[:, None] * DK + o_k[None, :], mask=m_tk, other=0.0).to(tl.float32)  # [C, BK]
    b_k = tl.load(k + rows[:, None] * DK + o_k[None, :], mask=m_tk, other=0.0).to(tl.float32)
    b_dq = _dot(b_dp, b_k, LOWP, DT, PREC) + b_dq * (q_decay * scale)[:, None]
    b_dk = _dot(tl.trans(b_dp), b_q, LOWP, DT, PREC) + b_dk * k_decay[:, None]
    tl.store(dq + rows[:, None] * DK + o_k[None, :], b_dq.to(dq.dtype.element_ty), mask=m_tk)
    tl.store(dk + rows[:, None] * DK + o_k[None, :], b_dk.to(dk.dtype.element_ty), mask=m_tk)


@triton.jit
def _bwd_dv_kernel(
    q, k, do, slopes, dh, dv, cu, chunk_off, chunk_seq,
    scale, T, H,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NK: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NV, G, H). Contract Dk in tiles: K Q^T [C, C] (= P^T before the mask), K dh_c [C, BV].
    i_v, g, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    row, t0, L = _chunk_coords(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    j = tl.arange(0, C)
    m_t = j < L
    rows = (row * H + i_h).to(tl.int64) * T + t0 + j
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    state = (g.to(tl.int64) * H + i_h) * DK * DV

    b_pt = tl.zeros([C, C], dtype=tl.float32)
    b_dv = tl.zeros([C, BV], dtype=tl.float32)
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < DK
        b_k = tl.load(k + rows[:, None] * DK + o_k[None, :], mask=m_t[:, None] & m_k[None, :],
                      other=0.0).to(tl.float32)  # [C, BK]
        b_qt = tl.load(q + rows[None, :] * DK + o_k[:, None], mask=m_k[:, None] & m_t[None, :],
                       other=0.0).to(tl.float32)  # [BK, C]
        b_dh = tl.load(dh + state + o_k[:, None] * DV + o_v[None, :], mask=m_k[:, None] & m_v[None, :],
                       other=0.0)  # [BK, BV]
        b_pt += _dot(b_k, b_qt, LOWP, DT, PREC)
        b_dv += _dot_state(b_k, b_dh, LOWP, DT, PREC)

    k_decay = tl.where(m_t, tl.exp(-slope * tl.maximum(L - 1 - j, 0).to(tl.float32)), 0.0)
    b_pt = b_pt * tl.trans(_intra_decay(slope, C)) * scale  # P^T[j, i] = k_j.q_i M[i, j]
    m_tv = m_t[:, None] & m_v[None, :]
    b_do = tl.load(do + rows[:, None] * DV + o_v[None, :], mask=m_tv, other=0.0).to(tl.float32)
    b_dv = _dot(b_pt, b_do, LOWP, DT, PREC) + b_dv * k_decay[:, None]
    tl.store(dv + rows[:, None] * DV + o_v[None, :], b_dv.to(dv.dtype.element_ty), mask=m_tv)


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------


def chunk_dstates(q, do, slopes, dht, scale, table: ChunkTable, cfg: KernelConfig, want_dh0: bool):
    """Reverse pass. Returns (dh [G,H,Dk,Dv] fp32, d(initial state) [S,H,Dk,Dv] fp32 or None)."""
    _, H, T, _ = q.shape
    dh = q.new_empty(table.n_chunks, H, cfg.dk, cfg.dv, dtype=torch.float32)
    dh0 = q.new_empty(table.n_seqs, H, cfg.dk, cfg.dv, dtype=torch.float32) if want_dh0 else None
    if table.n_seqs * H == 0:
        return dh, dh0
    grid = (cfg.nk, cfg.nv, table.n_seqs * H)
    _bwd_dstate_kernel[grid](
        q, do, slopes, dht, dh, dh0, table.cu, table.chunk_off, float(scale), T, H,
        DK=cfg.dk, DV=cfg.dv, C=cfg.chunk, BK=cfg.bk, BV=cfg.bv,
        USE_DHT=dht is not None, STORE_DH0=want_dh0, IS_VARLEN=table.varlen,
        LOWP=cfg.lowp, PREC=cfg.prec, num_warps=cfg.num_warps, num_stages=NUM_STAGES,
    )
    return dh, dh0


def chunk_grads(q, k, v, do, slopes, h, dh, scale, table: ChunkTable, cfg: KernelConfig):
    """Chunk-parallel dq, dk, dv (in the input dtype)."""
    _, H, T, _ = q.shape
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    if table.n_chunks * H == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    common = dict(DK=cfg.dk, DV=cfg.dv, C=cfg.chunk, BK=cfg.bk, BV=cfg.bv, IS_VARLEN=table.varlen,
                  LOWP=cfg.lowp, PREC=cfg.prec, num_warps=cfg.num_warps, num_stages=NUM_STAGES)
    _bwd_dqk_kernel[(cfg.nk, table.n_chunks, H)](
        q, k, v, do, slopes, h, dh, dq, dk, table.cu, table.chunk_off, table.chunk_seq,
        float(scale), T, H, NV=cfg.nv, **common,
    )
    _bwd_dv_kernel[(cfg.nv, table.n_chunks, H)](
        q, k, do, slopes, dh, dv, table.cu, table.chunk_off, table.chunk_seq,
        float(scale), T, H, NK=cfg.nk, **common,
    )
    return dq, dk, dv
