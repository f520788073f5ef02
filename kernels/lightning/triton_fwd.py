"""Triton forward of Lightning Attention: chunk-parallel, two passes.

Notation (per sequence and head, chunk c of length L <= C, local positions i, j in [0, L)):

    h_c     fp32 state entering chunk c, [Dk, Dv]; h_0 = initial state (or 0)
    h_{c+1} = exp(-s L) h_c + (K_c * k_decay)^T V_c,        k_decay[j] = exp(-s (L-1-j))
    O_c     = scale * ( ((Q_c K_c^T) * M) V_c + (Q_c * q_decay) h_c )
              M[i, j] = exp(-s (i-j)) for i >= j else 0,     q_decay[i] = exp(-s (i+1))

Pass 1, `_fwd_state_kernel`: one program per (Dk-tile, Dv-tile, sequence*head) walks that
sequence's chunks in order and writes every h_c to a buffer (plus the final state). Tiling
the state over Dk and Dv keeps the register tile small and multiplies the number of
programs, so even B*H = 32 fills an H100's 132 SMs at D = 128.
Pass 2, `_fwd_output_kernel`: one program per (Dv-tile, chunk, head), all independent.

State windows. The per-chunk states are 4*H*Dk*Dv bytes per chunk (2 GiB at B1 H32 N64K
D128), so the launchers walk the global chunk range in windows of W chunks (`StateWindows`):
for each window, pass 1 writes only that window's states into a W-chunk buffer (reused by
every window), pass 2 consumes them. The one sequence that crosses a window start resumes
from a checkpoint: the state entering the window's first chunk, written by the previous
window ([windows-1, H, Dk, Dv], kept for the backward, which walks the windows in reverse).
W is picked from a byte budget (see `StateWindows.make`), so state memory stays bounded by
max(256 MiB, (q+k+v bytes)/8) per buffer whatever the sequence length.

Only exponents inside one chunk appear (0..C), never exp(+s t), so nothing overflows
however long the sequence. Layout is head-first and contiguous: token t of head h in batch
row b sits at row (b*H + h)*T + t of a [B*H*T, D] matrix. With cu_seqlens (B == 1) the
sequences are packed along T and a host-built chunk table maps each global chunk index to
its sequence, so no chunk crosses a sequence boundary.

This file also holds the helpers the backward shares (`_seq_bounds`, `_chunk_coords`,
`_dot`, `_dot_state`, `_intra_decay`, `ChunkTable`, `KernelConfig`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .buffers import alloc

CHUNK = 64  # tokens per chunk (the official kernel and fla use 64 too)
TILE = 64  # max Dk / Dv tile; larger D loops over tiles (outputs) or splits programs (states)
# Min Dk / Dv tile. tl.dot accepts 16, but compiled for sm_90 with 8 warps, dots with a 16-wide
# side (Dk or Dv <= 16) died with "an illegal memory access" on an H200 (triton 3.6) although
# the interpreter under `memcheck.guard_memory` finds every address in bounds: a code-generation
# fault for tiles smaller than the warps (cf. triton-lang/triton#5125, pytorch/pytorch#95339).
# Tiles of 32 and more (masked past D) are the ones that ran there, so small D pad to 32.
MIN_TILE = 32
STATE_BUDGET_MIN = 256 << 20  # bytes per window state buffer, at least (see StateWindows.make)
STATE_BUDGET_QKV_DIV = 8  # ... or (q + k + v bytes) / 8, whichever is larger
NUM_STAGES = 3  # fixed (no autotune: it needs a GPU driver and breaks the interpreter); 3 measured best on an H200


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def fp32_dot_precision() -> str:
    """tl.dot precision for fp32 operands, following PyTorch's own fp32 matmul setting.

    "highest" (PyTorch's default) -> "tf32x3": fp32-level accuracy on tensor cores (slower,
    some register spills at D = 128). "high"/"medium" (torch.set_float32_matmul_precision,
    as most training scripts set) -> "tf32": what the official kernel uses, ~no spills.
    The interpreter always computes in full fp32.
    """
    return "tf32x3" if torch.get_float32_matmul_precision() == "highest" else "tf32"


# ----------------------------------------------------------------------------------------------
# Host side: block sizes, dot precision and the chunk table
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelConfig:
    """Compile-time sizes shared by all kernels of one call."""

    dk: int
    dv: int
    bk: int  # Dk tile: power of two in [MIN_TILE, TILE]; masked past dk
    bv: int
    chunk: int = CHUNK
    lowp: bool = False  # feed fp16/bf16 operands to tl.dot (GPU only; the interpreter can't)
    prec: str = "tf32x3"  # tl.dot input precision for fp32 operands
    # Per-chunk states h, dh stored in bf16 (bf16 inputs on the GPU): every dot that reads them
    # rounds them to bf16 anyway (`_dot_state`), so the results are the same bits and the state
    # traffic and memory halve. Running states, checkpoints and carries stay fp32.
    bf16_states: bool = False

    @property
    def state_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.bf16_states else torch.float32

    @property
    def num_warps(self) -> int:
        # With 64-wide tiles, ptxas for sm_90 (compiled ahead of time, no GPU) reports no
        # register spills for bf16/fp16 at 8 warps (<= 32 B in the dq/dk kernel at D = 256),
        # but 200-1200 B per kernel at 4 warps. Small tiles keep 4.
        # Measured on an H200 (B1 H32 N64K D128 bf16, 3 stages): 4 warps beat 8 for bf16/fp16
        # (fwd+bwd 5.57 vs 5.80 ms) despite the spills, so low precision takes 4; fp32 keeps 8.
        if self.lowp:
            return 4
        return 8 if max(self.bk, self.bv, self.chunk) >= 64 else 4

    @property
    def nk(self) -> int:
        return triton.cdiv(self.dk, self.bk)

    @property
    def nv(self) -> int:
        return triton.cdiv(self.dv, self.bv)

    @staticmethod
    def make(dk: int, dv: int, dtype: torch.dtype, chunk: int = CHUNK) -> "KernelConfig":
        def tile(d):
            return min(TILE, max(MIN_TILE, triton.next_power_of_2(d)))

        lowp = dtype in (torch.float16, torch.bfloat16) and not interpreting()
        return KernelConfig(dk, dv, tile(dk), tile(dv), chunk, lowp, fp32_dot_precision(),
                            bf16_states=lowp and dtype == torch.bfloat16)


@dataclass
class ChunkTable:
    """Where every chunk lives. Built once per forward on the host (small torch ops).

    n_seqs: S (B without cu_seqlens); n_chunks: total chunks G over all sequences.
    Without cu_seqlens every sequence has nt = cdiv(T, C) chunks and global chunk
    g = n*nt + c, so no tables are needed (`cu`, `chunk_off`, `chunk_seq` stay None).
    With cu_seqlens: cu [S+1] int32, chunk_off [S] int32 (first global chunk of each
    sequence), chunk_seq [G] int32 (sequence of each global chunk).
    """

    n_seqs: int
    n_chunks: int
    cu: torch.Tensor | None = None
    chunk_off: torch.Tensor | None = None
    chunk_seq: torch.Tensor | None = None

    @property
    def varlen(self) -> bool:
        return self.cu is not None

    @staticmethod
    def make(batch: int, seq: int, cu_seqlens: torch.Tensor | None, chunk: int) -> "ChunkTable":
        if cu_seqlens is None:
            return ChunkTable(batch, batch * triton.cdiv(seq, chunk))
        cu = cu_seqlens.to(torch.int32)
        nts = (cu[1:] - cu[:-1] + chunk - 1) // chunk  # [S] chunks per sequence (0 if empty)
        chunk_off = (torch.cumsum(nts, 0) - nts).to(torch.int32)
        n_chunks = int(nts.sum().item())
        seq_ids = torch.arange(len(nts), device=cu.device, dtype=torch.int32)
        chunk_seq = torch.repeat_interleave(seq_ids, nts.long()).to(torch.int32)
        return ChunkTable(len(nts), n_chunks, cu, chunk_off, chunk_seq)


@dataclass
class StateWindows:
    """Windows of `size` global chunks; per window (first chunk ga, end chunk gb, first
    sequence n_lo, number of sequences n_count) to launch the state kernels over. The
    sequence range may be a superset: the kernels skip sequences with no chunk in [ga, gb)
    (empty sequences run once, at the window their chunk offset falls in)."""

    size: int
    ranges: list[tuple[int, int, int, int]]

    @property
    def count(self) -> int:
        return len(self.ranges)

    @staticmethod
    def window_chunks(heads: int, dk: int, dv: int, qkv_bytes: int, n_chunks: int, window: int | None,
                      state_bytes: int = 4) -> int:
        """Chunks per window: the budget max(STATE_BUDGET_MIN, qkv_bytes / 8) over the bytes of one
        chunk's states ([H, Dk, Dv] of `state_bytes` each), at least 1, at most all chunks."""
        if window is None:
            per_chunk = state_bytes * heads * dk * dv
            budget = max(STATE_BUDGET_MIN, qkv_bytes // STATE_BUDGET_QKV_DIV)
            window = max(1, budget // max(per_chunk, 1))
        return max(1, min(int(window), n_chunks))

    @staticmethod
    def make(table: ChunkTable, heads: int, dk: int, dv: int, qkv_bytes: int,
             window: int | None = None, state_bytes: int = 4) -> "StateWindows":
        G, S = table.n_chunks, table.n_seqs
        size = StateWindows.window_chunks(heads, dk, dv, qkv_bytes, G, window, state_bytes)
        count = max(1, triton.cdiv(G, size))
        seq_of = table.chunk_seq.tolist() if table.varlen and count > 1 else None  # one host sync
        nt = G // S if S and not table.varlen else 0
        ranges = []
        for w in range(count):
            ga, gb = w * size, min(G, (w + 1) * size)
            if count == 1 or (not table.varlen and nt == 0):
                lo, hi = 0, S - 1
            elif not table.varlen:
                lo, hi = ga // nt, (gb - 1) // nt
            else:
                lo = 0 if w == 0 else seq_of[ga - 1]
                hi = S - 1 if gb == G else seq_of[gb]
            ranges.append((ga, gb, lo, max(0, hi - lo + 1)))
        return StateWindows(size, ranges)


# ----------------------------------------------------------------------------------------------
# Device helpers
# ----------------------------------------------------------------------------------------------


@triton.jit
def _seq_bounds(i_n, cu, T, IS_VARLEN: tl.constexpr):
    """Sequence i_n -> (batch row, first token, end token) in the [B, H, T] token grid."""
    if IS_VARLEN:
        bos = tl.load(cu + i_n).to(tl.int32)
        eos = tl.load(cu + i_n + 1).to(tl.int32)
        row = i_n * 0
    else:
        bos = i_n * 0
        eos = bos + T
        row = i_n
    return row, bos, eos


@triton.jit
def _first_chunk(i_n, chunk_off, T, C: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Global index of sequence i_n's first chunk in the per-chunk buffers."""
    if IS_VARLEN:
        g0 = tl.load(chunk_off + i_n).to(tl.int32)
    else:
        g0 = i_n * tl.cdiv(T, C)
    return g0


@triton.jit
def _chunk_coords(g, cu, chunk_off, chunk_seq, T, C: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Global chunk g -> (batch row, first token of the chunk, chunk length L <= C)."""
    if IS_VARLEN:
        i_n = tl.load(chunk_seq + g).to(tl.int32)
        c = g - tl.load(chunk_off + i_n).to(tl.int32)
    else:
        nt = tl.cdiv(T, C)
        i_n = g // nt
        c = g % nt
    row, bos, eos = _seq_bounds(i_n, cu, T, IS_VARLEN)
    t0 = bos + c * C
    return row, t0, tl.minimum(C, eos - t0)


@triton.jit
def _dot(a, b, LOWP: tl.constexpr, DT: tl.constexpr, PREC: tl.constexpr):
    """a @ b accumulated in fp32. LOWP: fp16/bf16 operands (tensor-core speed, GPU only)."""
    if LOWP:
        return tl.dot(a.to(DT), b.to(DT))
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _dot_state(a, b, LOWP: tl.constexpr, DT: tl.constexpr, PREC: tl.constexpr):
    """Like `_dot`, for products with an fp32 state operand (h or dh). Those grow with the
    sequence (no decay: up to ~T * |k||v|), which fp16's range (65504) cannot hold, so with
    fp16 inputs they run as tf32 on fp32 operands; bf16 has fp32's range and is safe."""
    if LOWP and DT == tl.bfloat16:
        return tl.dot(a.to(DT), b.to(DT))
    elif LOWP:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="tf32")
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _intra_decay(slope, C: tl.constexpr):
    """M[i, j] = exp(-s (i-j)) for i >= j else 0, [C, C] fp32 (exponent clamped: no inf)."""
    i = tl.arange(0, C)
    lag = i[:, None] - i[None, :]
    return tl.where(lag >= 0, tl.exp(-slope * tl.maximum(lag, 0).to(tl.float32)), 0.0)


# ----------------------------------------------------------------------------------------------
# Pass 1: chunk states
# ----------------------------------------------------------------------------------------------


@triton.jit
def _absorb_chunk(b_h, k, v, row0, L, o_k, o_v, slope, DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr,
                  LOWP: tl.constexpr, PREC: tl.constexpr):
    """The state after one chunk: exp(-s L) h + (K * k_decay)^T V, for the chunk of L <= C tokens whose first
    token is row `row0` of k [*, DK] / v [*, DV]. b_h [BK, BV] fp32 (tile o_k x o_v) -> [BK, BV] fp32."""
    j = tl.arange(0, C)
    m_t = j < L
    rows = row0 + j
    b_kt = tl.load(k + rows[None, :] * DK + o_k[:, None], mask=m_t[None, :] & (o_k[:, None] < DK),
                   other=0.0).to(tl.float32)  # [BK, C]
    b_v = tl.load(v + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < DV),
                  other=0.0).to(tl.float32)  # [C, BV]
    k_decay = tl.where(m_t, tl.exp(-slope * tl.maximum(L - 1 - j, 0).to(tl.float32)), 0.0)
    return b_h * tl.exp(-slope * L.to(tl.float32)) + _dot(b_kt, b_v * k_decay[:, None], LOWP,
                                                           k.dtype.element_ty, PREC)


@triton.jit
def _window_span(i_n, cu, chunk_off, T, ga, gb, C: tl.constexpr, IS_VARLEN: tl.constexpr):
    """Sequence i_n within the window of global chunks [ga, gb): (batch row, first token, first
    global chunk g0, local chunk range [c_lo, c_hi), active). Inactive: no chunk in the window
    (an empty sequence is active in the window(s) its chunk offset falls in)."""
    row, bos, eos = _seq_bounds(i_n, cu, T, IS_VARLEN)
    g0 = _first_chunk(i_n, chunk_off, T, C, IS_VARLEN)
    nt = tl.cdiv(eos - bos, C)
    c_lo = tl.maximum(ga - g0, 0)
    c_hi = tl.minimum(gb - g0, nt)
    active = (c_lo < c_hi) | ((nt == 0) & (g0 >= ga) & (g0 <= gb))
    return row, bos, eos, g0, nt, c_lo, c_hi, active


@triton.jit
def _fwd_state_kernel(
    k, v, slopes, h0, h, ht, ckpt, cu, chunk_off,
    T, H, ga, gb, n_lo, w,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_H0: tl.constexpr, STORE_HT: tl.constexpr, STORE_CKPT: tl.constexpr, IS_VARLEN: tl.constexpr,
    LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NK, NV, n_count*H), one window [ga, gb) of global chunks. k [B*H*T, DK], v [B*H*T, DV];
    # h [W, H, DK, DV] fp32 or bf16 (state entering each chunk of the window, index g - ga);
    # h0, ht [S, H, DK, DV]; ckpt [windows-1, H, DK, DV]: ckpt[w-1] = state entering chunk ga of
    # the sequence that crosses it (read here), ckpt[w] = state entering chunk gb (written here).
    i_k, i_v, i_nh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = n_lo + i_nh // H, i_nh % H
    row, bos, eos, g0, nt, c_lo, c_hi, active = _window_span(i_n, cu, chunk_off, T, ga, gb, C, IS_VARLEN)
    if active:
        slope = tl.load(slopes + i_h).to(tl.float32)
        o_k = i_k * BK + tl.arange(0, BK)
        o_v = i_v * BV + tl.arange(0, BV)
        m_kv = (o_k[:, None] < DK) & (o_v[None, :] < DV)
        tile = o_k[:, None] * DV + o_v[None, :]  # [BK, BV] offsets inside one state
        tok0 = (row * H + i_h).to(tl.int64) * T + bos  # row of this sequence's first token
        seq_state = (i_n * H + i_h).to(tl.int64) * DK * DV

        b_h = tl.zeros([BK, BV], dtype=tl.float32)
        if g0 < ga:  # resumes from the previous window
            b_h += tl.load(ckpt + ((w - 1) * H + i_h).to(tl.int64) * DK * DV + tile, mask=m_kv, other=0.0)
        elif USE_H0:
            b_h += tl.load(h0 + seq_state + tile, mask=m_kv, other=0.0).to(tl.float32)

        for c in range(c_lo, c_hi):
            tl.store(h + ((g0 + c - ga).to(tl.int64) * H + i_h) * DK * DV + tile, b_h, mask=m_kv)
            b_h = _absorb_chunk(b_h, k, v, tok0 + c * C, tl.minimum(C, eos - bos - c * C), o_k, o_v, slope,
                                DK, DV, C, LOWP, PREC)

        if g0 + nt > gb:  # continues in the next window
            if STORE_CKPT:
                tl.store(ckpt + (w * H + i_h).to(tl.int64) * DK * DV + tile, b_h, mask=m_kv)
        else:
            if STORE_HT:
                tl.store(ht + seq_state + tile, b_h, mask=m_kv)


# ----------------------------------------------------------------------------------------------
# Pass 2: outputs, parallel over chunks
# ----------------------------------------------------------------------------------------------


@triton.jit
def _fwd_output_kernel(
    q, k, v, slopes, h, o, cu, chunk_off, chunk_seq,
    scale, T, H, ga,
    DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    NK: tl.constexpr, IS_VARLEN: tl.constexpr, LOWP: tl.constexpr, PREC: tl.constexpr,
):
    # grid (NV, gb - ga, H): the chunks of one window. O[:, v-tile] = scale * (((Q K^T) * M) V +
    # (Q * q_decay) h_c), the Dk contractions accumulated over Dk tiles. q, k [B*H*T, DK];
    # v, o [B*H*T, DV]; h [W, H, DK, DV] (this window's states).
    i_v, i_g, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    g = ga + i_g
    row, t0, L = _chunk_coords(g, cu, chunk_off, chunk_seq, T, C, IS_VARLEN)
    slope = tl.load(slopes + i_h).to(tl.float32)
    DT = q.dtype.element_ty

    j = tl.arange(0, C)
    m_t = j < L
    rows = (row * H + i_h).to(tl.int64) * T + t0 + j  # [C]
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    h_base = h + (i_g.to(tl.int64) * H + i_h) * DK * DV

    b_s = tl.zeros([C, C], dtype=tl.float32)  # Q K^T
    b_o = tl.zeros([C, BV], dtype=tl.float32)  # Q h_c
    for i_k in range(NK):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < DK
        b_q = tl.load(q + rows[:, None] * DK + o_k[None, :], mask=m_t[:, None] & m_k[None, :],
                      other=0.0).to(tl.float32)  # [C, BK]
        b_kt = tl.load(k + rows[None, :] * DK + o_k[:, None], mask=m_k[:, None] & m_t[None, :],
                       other=0.0).to(tl.float32)  # [BK, C]
        b_h = tl.load(h_base + o_k[:, None] * DV + o_v[None, :], mask=m_k[:, None] & m_v[None, :],
                      other=0.0)  # [BK, BV] fp32
        b_s += _dot(b_q, b_kt, LOWP, DT, PREC)
        b_o += _dot_state(b_q, b_h, LOWP, DT, PREC)

    q_decay = tl.exp(-slope * (j + 1).to(tl.float32))
    b_v = tl.load(v + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & m_v[None, :],
                  other=0.0).to(tl.float32)  # [C, BV]
    b_s = b_s * _intra_decay(slope, C)
    b_o = (b_o * q_decay[:, None] + _dot(b_s, b_v, LOWP, DT, PREC)) * scale
    tl.store(o + rows[:, None] * DV + o_v[None, :], b_o.to(o.dtype.element_ty),
             mask=m_t[:, None] & m_v[None, :])


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------


def run_states(k, v, slopes, h0, h, ht, ckpt, table: ChunkTable, cfg: KernelConfig, win, w: int,
               store_ckpt: bool) -> None:
    """Pass 1 over window w: fills h[0 : gb-ga] (and ht, ckpt[w] where sequences end / go on).
    k [B,H,T,Dk], v [B,H,T,Dv] contiguous; slopes fp32 [H]; h0 [S,H,Dk,Dv] or None."""
    _, H, T, _ = k.shape
    ga, gb, n_lo, n_count = win.ranges[w]
    if n_count * H == 0:
        return
    _fwd_state_kernel[(cfg.nk, cfg.nv, n_count * H)](
        k, v, slopes, h0, h, ht, ckpt, table.cu, table.chunk_off, T, H, ga, gb, n_lo, w,
        DK=cfg.dk, DV=cfg.dv, C=cfg.chunk, BK=cfg.bk, BV=cfg.bv,
        USE_H0=h0 is not None, STORE_HT=ht is not None, STORE_CKPT=store_ckpt, IS_VARLEN=table.varlen,
        LOWP=cfg.lowp, PREC=cfg.prec, num_warps=cfg.num_warps, num_stages=NUM_STAGES,
    )


def run_outputs(q, k, v, slopes, h, o, scale: float, table: ChunkTable, cfg: KernelConfig, win, w: int) -> None:
    """Pass 2 over window w: o rows of chunks [ga, gb), from this window's states h."""
    _, H, T, _ = q.shape
    ga, gb, _, _ = win.ranges[w]
    if (gb - ga) * H == 0:
        return
    _fwd_output_kernel[(cfg.nv, gb - ga, H)](
        q, k, v, slopes, h, o, table.cu, table.chunk_off, table.chunk_seq, float(scale), T, H, ga,
        DK=cfg.dk, DV=cfg.dv, C=cfg.chunk, BK=cfg.bk, BV=cfg.bv, NK=cfg.nk,
        IS_VARLEN=table.varlen, LOWP=cfg.lowp, PREC=cfg.prec,
        num_warps=cfg.num_warps, num_stages=NUM_STAGES,
    )


def state_buffer(like, win, cfg: KernelConfig, tag: str) -> torch.Tensor:
    """[W, H, Dk, Dv] scratch (fp32, or bf16 see KernelConfig) for one window's per-chunk states
    (or state gradients)."""
    return alloc((win.size, like.shape[1], cfg.dk, cfg.dv), cfg.state_dtype, like.device, role="scratch", tag=tag)


def lightning_forward(q, k, v, slopes, h0, scale: float, table: ChunkTable, cfg: KernelConfig, win,
                      store_final: bool):
    """Both passes, window by window. q, k [B,H,T,Dk], v [B,H,T,Dv] contiguous.

    Returns (o [B,H,T,Dv] in q's dtype, final state [S,H,Dk,Dv] fp32 or None,
    checkpoints [windows-1, H, Dk, Dv] fp32 for the backward).
    """
    H = q.shape[1]
    o = alloc(v.shape, q.dtype, q.device, role="out", tag="o")
    ht = alloc((table.n_seqs, H, cfg.dk, cfg.dv), torch.float32, q.device, role="out",
               tag="final_state") if store_final else None
    ckpt = alloc((win.count - 1, H, cfg.dk, cfg.dv), torch.float32, q.device, role="scratch", tag="checkpoints")
    h = state_buffer(q, win, cfg, "h")
    for w in range(win.count):
        run_states(k, v, slopes, h0, h, ht, ckpt, table, cfg, win, w, store_ckpt=True)
        run_outputs(q, k, v, slopes, h, o, scale, table, cfg, win, w)
    return o, ht, ckpt
