"""Triton backward of Lightning Attention: a reverse state pass, then chunk-parallel grads.

With the forward's notation (see triton_fwd.py) and dh_c := dLoss/d(state leaving chunk c):

    dh_{last}  = d(final state)  (or 0)
    dh_{c-1}   = exp(-s L_c) dh_c + scale * (Q_c * q_decay)^T dO_c       (reverse over chunks)
    d(initial state) = the value after the last (first-in-time) step

and inside chunk c, with dP = scale * (dO V^T) * M and P = (Q K^T) * M:

    dQ = dP K + scale * (dO h_c^T) * q_decay          (h_c: state entering chunk c)
    dK = dP^T Q + (V dh_c^T) * k_decay
    dV = scale * P^T dO + (K * k_decay) dh_c

Kernels, launched per state window (see triton_fwd.py), windows in reverse order:
  `_bwd_dstate_kernel`  grid (NK, NV, n*H): walks the window's chunks backwards, writes dh_c
                        for each into a [W, H, Dk, Dv] fp32 buffer; the sequence that goes on
                        before the window hands its gradient to the previous window through a
                        two-slot carry, the others write d(initial state).
  `_bwd_dqk_kernel`     grid (NK, W, H): dQ, dK for one Dk tile, contracting Dv in tiles.
  `_bwd_dv_kernel`      grid (NV, W, H): dV for one Dv tile, contracting Dk in tiles.
The window's states h_c are recomputed with the forward's pass 1 from the checkpoint the
forward kept at the window start (reads k and v of the window once), so training keeps
q, k, v and one [H, Dk, Dv] state per window per layer.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .buffers import alloc
from .triton_fwd import (
    NUM_STAGES,
    ChunkTable,
    KernelConfig,
    _chunk_coords,
    _dot,
    _dot_state,
    _intra_decay,
    _window_span,
    run_states,
    state_buffer,
)


@triton.jit
def _bwd_dstate_kernel(
    q, do, slopes, dht, dh, dh0, dcarry, cu, chunk_off,
    scale, T, H, ga, gb, n_lo, w,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_VARLEN: tl.constexpr,
    LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK, NV, n_count*H), window [ga, gb). q [B*H*T, DK], do [B*H*T, DV]; dh [W, H, DK, DV]
    # fp32 (gradient of the state leaving each chunk of the window); dht, dh0 [S, H, DK, DV];
    # dcarry [2, H, DK, DV]: slot (w+1)%2 = gradient of the state entering chunk gb (read),
    # slot w%2 = gradient of the state entering chunk ga (written).
    i_k, i_v, i_nh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = n_lo + i_nh // H, i_nh % H
    row, bos, eos, g0, nt, c_lo, c_hi, active = _window_span(i_n, cu, chunk_off, T, ga, gb, C, IS_VARLEN)
    if active:
        slope = tl.load(slopes + i_h).to(tl.float32)
        o_k = i_k * BK + tl.arange(0, BK)
        o_v = i_v * BV + tl.arange(0, BV)
        j = tl.arange(0, C)
        m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
        tile = o_k[:, None] * DV + o_v[None, :]
        tok0 = (row * H + i_h).to(tl.int64) * T + bos
        seq_state = (i_n * H + i_h).to(tl.int64) * DK * DV
        q_decay = tl.exp(-slope * (j + 1).to(tl.float32)) * scale  # folds the output scale in

        b_dh = tl.zeros([BK, BV], dtype=tl.float32)
        if g0 + nt > gb:  # goes on after this window
            b_dh += tl.load(dcarry + (((w + 1) % 2) * H + i_h).to(tl.int64) * DK * DV + tile, mask=m_kv, other=0.0)
        elif USE_DHT:
            b_dh += tl.load(dht + seq_state + tile, mask=m_kv, other=0.0).to(tl.float32)

        for ci in range(0, c_hi - c_lo):
            c = c_hi - 1 - ci  # reverse order (a negative range step is avoided on purpose)
            tl.store(dh + ((g0 + c - ga).to(tl.int64) * H + i_h) * DK * DV + tile, b_dh, mask=m_kv)
            L = tl.minimum(C, eos - bos - c * C)
            m_t = j < L
            rows = tok0 + c * C + j
            b_qt = tl.load(q + rows[None, :] * DK + o_k[:, None], mask=m_t[None, :] & (o_k[:, None] < DK),
                           other=0.0).to(tl.float32)  # [BK, C]
            b_do = tl.load(do + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < DV),
                           other=0.0).to(tl.float32)  # [C, BV]
            b_dh = b_dh * tl.exp(-slope * L.to(tl.float32)) + _dot(
                b_qt * q_decay[None, :], b_do, LOWP, q.dtype.element_ty, PREC)

        if g0 < ga:  # began before this window: hand over to the previous one
            tl.store(dcarry + ((w % 2) * H + i_h).to(tl.int64) * DK * DV + tile, b_dh, mask=m_kv)
        else:
            if STORE_DH0:
                tl.store(dh0 + seq_state + tile, b_dh, mask=m_kv)


@triton.jit
def _bwd_dqk_kernel(
    q, k, v, do, slopes, h, dh, dq, dk, cu, chunk_off, chunk_seq,
    scale, T, H, ga,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NV: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK, gb - ga, H): one window's chunks; h, dh [W, H, DK, DV] are that window's.
    # Contract Dv in tiles: dO V^T [C, C], dO h_c^T [C, BK], V dh_c^T [C, BK].
    i_k, i_g, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    g = ga + i_g
    row, t0, L = _chunk_coords(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    j = tl.arange(0, C)
    m_t = j < L
    rows = (row * H + i_h).to(tl.int64) * T + t0 + j
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < DK
    state = (i_g.to(tl.int64) * H + i_h) * DK * DV

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
    scale, T, H, ga,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NK: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NV, gb - ga, H): one window's chunks; dh [W, H, DK, DV] is that window's.
    # Contract Dk in tiles: K Q^T [C, C] (= P^T before the mask), K dh_c [C, BV].
    i_v, i_g, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    g = ga + i_g
    row, t0, L = _chunk_coords(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    j = tl.arange(0, C)
    m_t = j < L
    rows = (row * H + i_h).to(tl.int64) * T + t0 + j
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    state = (i_g.to(tl.int64) * H + i_h) * DK * DV

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


def lightning_backward(q, k, v, do, slopes, h0, dht, ckpt, scale, table: ChunkTable, cfg: KernelConfig, win,
                       want_dh0: bool):
    """Windows in reverse: recompute the window's states from its checkpoint, walk the state
    gradients back through it, then dq, dk, dv of its chunks.

    q, k [B,H,T,Dk], v, do [B,H,T,Dv] contiguous; dht [S,H,Dk,Dv] fp32 or None; ckpt from
    `lightning_forward`. Returns (dq, dk, dv in the input dtype, d(initial state) fp32 or None).
    """
    _, H, T, _ = q.shape
    dq = alloc(q.shape, q.dtype, q.device, role="out", tag="dq")
    dk = alloc(k.shape, k.dtype, k.device, role="out", tag="dk")
    dv = alloc(v.shape, v.dtype, v.device, role="out", tag="dv")
    dh0 = alloc((table.n_seqs, H, cfg.dk, cfg.dv), torch.float32, q.device, role="out",
                tag="d_initial_state") if want_dh0 else None
    h = state_buffer(q, win, cfg, "h")
    dh = state_buffer(q, win, cfg, "dh")
    dcarry = alloc((2 if win.count > 1 else 0, H, cfg.dk, cfg.dv), torch.float32, q.device, role="scratch",
                   tag="dh_carry")
    common = dict(DK=cfg.dk, DV=cfg.dv, C=cfg.chunk, BK=cfg.bk, BV=cfg.bv, IS_VARLEN=table.varlen,
                  LOWP=cfg.lowp, PREC=cfg.prec, num_warps=cfg.num_warps, num_stages=NUM_STAGES)
    for w in reversed(range(win.count)):
        ga, gb, n_lo, n_count = win.ranges[w]
        run_states(k, v, slopes, h0, h, None, ckpt, table, cfg, win, w, store_ckpt=False)
        if n_count * H:
            _bwd_dstate_kernel[(cfg.nk, cfg.nv, n_count * H)](
                q, do, slopes, dht, dh, dh0, dcarry, table.cu, table.chunk_off, float(scale), T, H,
                ga, gb, n_lo, w, USE_DHT=dht is not None, STORE_DH0=want_dh0, **common,
            )
        if (gb - ga) * H == 0:
            continue
        _bwd_dqk_kernel[(cfg.nk, gb - ga, H)](
            q, k, v, do, slopes, h, dh, dq, dk, table.cu, table.chunk_off, table.chunk_seq,
            float(scale), T, H, ga, NV=cfg.nv, **common,
        )
        _bwd_dv_kernel[(cfg.nv, gb - ga, H)](
            q, k, do, slopes, dh, dv, table.cu, table.chunk_off, table.chunk_seq,
            float(scale), T, H, ga, NK=cfg.nk, **common,
        )
    return dq, dk, dv, dh0
