"""Lightning forward with block-carried states (triton_fwd_block.py), in the Triton interpreter.

The block forward must return what the chunk forward returns: o, the final state and the
window checkpoints the shared backward resumes from. Every case runs on margined inputs
(NaN around them), with every launcher buffer NaN-poisoned and under the address guard
(kernels/memcheck.py), so a stray read, an unwritten element or an out-of-bounds address
fails. Small `block_chunks`, `chunk_size` and `state_window` put block starts, sequence
starts and window starts at every relative position with N <= 1024.
"""

import re

import pytest
import sm90_aot
import torch
from lightning_cases import cu_seqlens, lightning_inputs, spy_on

from vsuite_kernels.lightning import lightning_attn_naive
from vsuite_kernels.lightning.buffers import poison, record
from vsuite_kernels.memcheck import guard_memory, margined, margins_intact
from vsuite_kernels.testing import assert_close

pytestmark = pytest.mark.triton

EXACT = 1e-5  # block vs chunk forward, fp32: the same sums in another order (seen: ~1e-7)


def _inputs(B, H, N, Dk, Dv, dtype=torch.float32, *, decay=True, **kw):
    return lightning_inputs(B, H, N, Dk, Dv, dtype, slopes="rand" if decay else "zero", **kw)


def _setup(q, k, v, init, cu, chunk, window):
    from vsuite_kernels.lightning.triton_fwd import ChunkTable, KernelConfig, StateWindows

    B, H, N, Dk = q.shape
    Dv = v.shape[-1]
    cfg = KernelConfig.make(Dk, Dv, q.dtype, chunk)
    table = ChunkTable.make(B, N, cu, chunk)
    qkv = (q.numel() + k.numel() + v.numel()) * q.element_size()
    return table, cfg, StateWindows.make(table, H, Dk, Dv, qkv, window, cfg.state_dtype.itemsize)


def both_forwards(q, k, v, slopes, init, *, cu=None, chunk=16, window=None, nb=None, store_final=True):
    """The chunk and the block launcher on the same margined inputs, poisoned and guarded.
    Returns {"chunk": (o, ht, ckpt), "block": (o, ht, ckpt)}."""
    from vsuite_kernels.lightning.triton_fwd import lightning_forward
    from vsuite_kernels.lightning.triton_fwd_block import lightning_forward_block

    m = {n: margined(t) for n, t in dict(q=q, k=k, v=v, s=slopes, h0=init, cu=cu).items() if t is not None}
    table, cfg, win = _setup(m["q"], m["k"], m["v"], m.get("h0"), m.get("cu"), chunk, window)
    out = {}
    with poison(), guard_memory():
        out["chunk"] = lightning_forward(m["q"], m["k"], m["v"], m["s"], m.get("h0"), 0.8, table, cfg, win,
                                         store_final)
        out["block"] = lightning_forward_block(m["q"], m["k"], m["v"], m["s"], m.get("h0"), 0.8, table, cfg,
                                               win, store_final, nb)
    for name, view in m.items():
        assert margins_intact(view), f"a kernel wrote into the margin around {name}"
    return out, win


def check_same(out, win):
    (o_c, ht_c, ck_c), (o_b, ht_b, ck_b) = out["chunk"], out["block"]
    assert_close("o", o_c, o_b, EXACT)
    if ht_c is None:
        assert ht_b is None
    else:
        assert_close("final_state", ht_c, ht_b, EXACT)
    assert ck_b.shape == ck_c.shape == (win.count - 1, *ck_c.shape[1:])
    # A checkpoint slot is written only where a sequence crosses the window start (the others
    # stay NaN-poisoned in both forwards, and are never read).
    written = ~torch.isnan(ck_c)
    assert torch.equal(written, ~torch.isnan(ck_b)), "the block forward wrote other checkpoint slots"
    if written.any():
        assert_close("checkpoints", ck_c[written], ck_b[written], EXACT)


# (B, H, N, Dk, Dv, initial state, chunk, state window, chunks per block)
FIXED = [
    (1, 2, 1, 64, 64, True, 64, None, None),  # a single token
    (2, 2, 10, 16, 16, True, 16, None, 2),  # N < one chunk
    (2, 2, 63, 1, 1, True, 16, 1, 3),  # D = 1; a window per chunk; blocks straddle batch rows
    (1, 2, 100, 3, 8, False, 16, 2, 2),  # D = 3, Dk != Dv, no initial state
    (2, 1, 130, 8, 3, True, 16, 3, 3),  # N not a multiple of the chunk nor of the block
    (1, 3, 160, 32, 48, True, 16, 4, 5),  # H not a power of two; window and block boundaries interleave
    (1, 2, 200, 48, 32, True, 16, 5, 4),
    (1, 1, 257, 64, 128, True, 64, 2, 2),  # Dv in two tiles, one token past 4 chunks
    (1, 1, 200, 128, 64, True, 64, 1, 1),  # Dk = 128: the largest block tile; one chunk per block
    (1, 2, 1000, 32, 32, True, 64, None, None),  # the default block size (16 chunks: one block)
    (1, 1, 1024, 16, 16, True, 16, 7, None),  # 64 chunks: the default picks blocks of 2
]


@pytest.mark.parametrize("B,H,N,Dk,Dv,h0,chunk,window,nb", FIXED)
def test_block_forward_equals_chunk_forward(B, H, N, Dk, Dv, h0, chunk, window, nb):
    q, k, v, slopes, init, _, _ = _inputs(B, H, N, Dk, Dv, h0=h0)
    out, win = both_forwards(q, k, v, slopes, init, chunk=chunk, window=window, nb=nb)
    check_same(out, win)
    ref_o, ref_ht = lightning_attn_naive(q.double(), k.double(), v.double(), slopes, scale=0.8,
                                         initial_state=None if init is None else init.double(),
                                         output_final_state=True)
    assert_close("o vs naive", ref_o, out["block"][0], 1e-4)
    assert_close("final state vs naive", ref_ht, out["block"][1], 1e-4)


@pytest.mark.parametrize("lengths,chunk,window,nb", [
    ((5, 0, 40, 3, 70, 0), 16, 3, 2),  # empty sequences in the middle and at the end
    ((0, 33, 0, 16, 17), 16, 1, 3),  # empty first sequence, one chunk per window
    ((1, 70, 129, 200), 16, 4, 5),  # long sequences crossing several blocks and windows
    ((0, 0), 16, None, None),  # nothing at all: final states are the initial states
])
def test_block_forward_varlen(lengths, chunk, window, nb):
    q, k, v, slopes, init, _, _ = _inputs(1, 2, sum(lengths), 8, 16, n_states=len(lengths), seed=1)
    out, win = both_forwards(q, k, v, slopes, init, cu=cu_seqlens(lengths), chunk=chunk, window=window, nb=nb)
    check_same(out, win)
    if win.count > 1:
        assert (~torch.isnan(out["block"][2])).any()  # some checkpoint is really compared


def test_block_forward_without_final_state():
    q, k, v, slopes, init, _, _ = _inputs(1, 2, 90, 16, 32)
    out, win = both_forwards(q, k, v, slopes, init, window=2, nb=2, store_final=False)
    check_same(out, win)


@pytest.mark.parametrize("nb", [1, 2, 5, 64])
def test_block_size_does_not_change_results(nb):
    """Each block size splits the same sums differently; all agree with the one-block result."""
    from vsuite_kernels.lightning.triton_fwd_block import lightning_forward_block

    q, k, v, slopes, init, _, _ = _inputs(1, 2, 300, 16, 16)
    table, cfg, win = _setup(q, k, v, init, None, 16, None)
    one = lightning_forward_block(q, k, v, slopes, init, 1.0, table, cfg, win, True, 64)
    got = lightning_forward_block(q, k, v, slopes, init, 1.0, table, cfg, win, True, nb)
    assert_close("o", one[0], got[0], EXACT)
    assert_close("final_state", one[1], got[1], EXACT)


# ----------------------------------------------------------------------------------------------
# Through the autograd op: fwd + bwd against the float64 reference, guarded
# ----------------------------------------------------------------------------------------------


def _run_guarded(*args, **kw):
    from test_lightning_guard import run_guarded  # the same guarded fp64 comparison as the chunk path

    return run_guarded(*args, fwd_mode="block", **kw)


@pytest.mark.parametrize("B,H,N,Dk,Dv,window,nb", [
    (2, 2, 63, 16, 48, None, 2),
    (1, 2, 257, 96, 128, 2, 2),  # Dv in two tiles, windows of 2 chunks: the backward resumes from checkpoints
    (2, 1, 130, 128, 64, 1, 3),
    (1, 2, 100, 3, 1, 3, 2),
])
def test_block_fwd_bwd_guarded(B, H, N, Dk, Dv, window, nb):
    _run_guarded(*_inputs(B, H, N, Dk, Dv), state_window=window, block_chunks=nb)


def test_block_fwd_bwd_varlen_guarded():
    lengths = (5, 0, 40, 3, 70, 0)
    inputs = _inputs(1, 2, sum(lengths), 8, 16, n_states=len(lengths), seed=1)
    _run_guarded(*inputs, cu_seqlens=cu_seqlens(lengths), chunk_size=16, state_window=3, block_chunks=2)


def test_block_fwd_bwd_bf16_guarded():
    _run_guarded(*_inputs(1, 2, 200, 16, 8, torch.bfloat16), chunk_size=16, state_window=4, block_chunks=3)


# ----------------------------------------------------------------------------------------------
# Selection: keyword, environment, fallback for Dk > 128
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def block_calls(monkeypatch):
    """The chunks per block of every block-forward launch."""
    from vsuite_kernels.lightning import triton_op

    monkeypatch.delenv("VSUITE_LIGHTNING_FWD", raising=False)
    return spy_on(monkeypatch, triton_op, "lightning_forward_block")


def _call(q, k, v, slopes, **kw):
    from vsuite_kernels.lightning.triton_op import lightning_attn_triton

    return lightning_attn_triton(q, k, v, slopes, output_final_state=True, chunk_size=16, **kw)


def test_selection(block_calls, monkeypatch):
    q, k, v, slopes, _, _, _ = _inputs(1, 2, 40, 16, 16, h0=False)
    ref_o, ref_ht = lightning_attn_naive(q.double(), k.double(), v.double(), slopes, output_final_state=True)
    for kw, env, block in [({}, None, False), (dict(fwd_mode="block"), None, True), ({}, "block", True),
                           (dict(fwd_mode="chunk"), "block", False), ({}, "chunk", False)]:
        if env is None:
            monkeypatch.delenv("VSUITE_LIGHTNING_FWD", raising=False)
        else:
            monkeypatch.setenv("VSUITE_LIGHTNING_FWD", env)
        block_calls.clear()
        o, ht = _call(q, k, v, slopes, **kw)
        assert bool(block_calls) == block, (kw, env)
        assert_close("o", ref_o, o, 1e-4)
        assert_close("final_state", ref_ht, ht, 1e-4)


def test_large_dk_falls_back_to_chunks(block_calls):
    q, k, v, slopes, _, _, _ = _inputs(1, 1, 40, 200, 16, h0=False)
    o, _ = _call(q, k, v, slopes, fwd_mode="block")
    assert block_calls == []
    ref_o, _ = lightning_attn_naive(q.double(), k.double(), v.double(), slopes)
    assert_close("o", ref_o, o, 1e-4)


def test_rejects_bad_modes(monkeypatch):
    q, k, v, slopes, _, _, _ = _inputs(1, 1, 8, 16, 16, h0=False)
    with pytest.raises(ValueError, match="fwd_mode must be one of"):
        _call(q, k, v, slopes, fwd_mode="blocks")
    monkeypatch.setenv("VSUITE_LIGHTNING_FWD", "fast")
    with pytest.raises(ValueError, match="VSUITE_LIGHTNING_FWD must be one of"):
        _call(q, k, v, slopes)
    with pytest.raises(ValueError, match="block_chunks"):
        _call(q, k, v, slopes, fwd_mode="block", block_chunks=0)


def test_block_chunks_rule():
    from vsuite_kernels.lightning.triton_fwd_block import BLOCK_CHUNKS, MAX_GRID_Y, block_chunks

    assert block_chunks(1024, 32, 2) == BLOCK_CHUNKS == 16  # B1 H32 N64K D128: 64 blocks x 64 programs
    assert block_chunks(1024, 16, 1) == 16  # B8 H16 N8192 D64: 64 blocks x 16 heads = 1024 programs
    assert block_chunks(16, 2, 1) == 2  # few programs: short blocks for parallelism
    assert block_chunks(100, 2, 1, nb=7) == 7  # an explicit size is kept ...
    assert -(-(MAX_GRID_Y * 4) // block_chunks(MAX_GRID_Y * 4, 1, 1, nb=1)) <= MAX_GRID_Y  # ... within the grid


# ----------------------------------------------------------------------------------------------
# Memory accounting
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lengths,window,nb", [(None, None, None), (None, 2, 3), ((5, 0, 40, 3, 70, 0), 3, 2)])
def test_workspace_formula_matches_allocations(lengths, window, nb):
    from vsuite_kernels.lightning.triton_op import lightning_workspace_bytes

    B, H, Dk, Dv, chunk, N, cu = 2, 3, 24, 40, 16, 90, None
    if lengths is not None:
        B, N, cu = 1, sum(lengths), cu_seqlens(lengths)
    q, k, v, slopes, init, do, dht = _inputs(B, H, N, Dk, Dv, n_states=len(lengths or [0] * B))
    xs = [t.requires_grad_() for t in (q, k, v)]
    with record() as fwd_log:
        o, ht = _call(*xs, slopes, initial_state=init, cu_seqlens=cu, state_window=window, fwd_mode="block",
                      block_chunks=nb)
    with record() as bwd_log:
        torch.autograd.backward([o, ht], [do, dht])
    assert any(tag == "block_states" for _, tag, _ in fwd_log)
    fwd = sum(n for role, _, n in fwd_log if role == "scratch")
    bwd = sum(n for role, _, n in bwd_log if role == "scratch")
    kw = dict(seq_lens=lengths, chunk_size=chunk, state_window=window, device="cpu", fwd_mode="block",
              block_chunks=nb)
    assert lightning_workspace_bytes(B, H, N, Dk, Dv, torch.float32, "fwd", **kw) == fwd
    assert lightning_workspace_bytes(B, H, N, Dk, Dv, torch.float32, "fwdbwd", **kw) == fwd + bwd


def test_workspace_block_at_the_issue_shape(monkeypatch):
    """B1 H32 N64K D128 bf16: 64 block states (128 MiB) replace the 256 MiB window buffer."""
    from vsuite_kernels.lightning.triton_op import lightning_workspace_bytes

    monkeypatch.delenv("VSUITE_LIGHTNING_FWD", raising=False)
    state = 32 * 128 * 128 * 4
    chunk = lightning_workspace_bytes(1, 32, 65536, 128, 128, torch.bfloat16, "fwd")
    block = lightning_workspace_bytes(1, 32, 65536, 128, 128, torch.bfloat16, "fwd", fwd_mode="block")
    windows = (chunk - (256 << 20)) // state + 1
    assert block == (64 + windows - 1) * state < chunk
    monkeypatch.setenv("VSUITE_LIGHTNING_FWD", "block")  # the benchmarks' switch counts too
    assert lightning_workspace_bytes(1, 32, 65536, 128, 128, torch.bfloat16, "fwd") == block


# ----------------------------------------------------------------------------------------------
# Compiled for sm_90 ahead of time: the code the interpreter never sees, and ptxas's report
# ----------------------------------------------------------------------------------------------


_AOT_SCRIPT = r"""
import torch
from sm90_aot import compile_kernel, ptxas_report
from vsuite_kernels.lightning import triton_fwd, triton_fwd_block as tb

SCALARS = dict(T="i32", H="i32", G="i32", NB="i32", NBLK="i32", WS="i32", scale="fp32")
STATES = ("slopes", "h0", "hb", "ht", "ckpt")

for dtype, dk, dv, varlen, prec in [("bf16", 128, 128, False, "tf32x3"), ("bf16", 64, 64, False, "tf32x3"),
                                    ("fp16", 96, 48, True, "tf32x3"), ("fp32", 128, 64, True, "tf32"),
                                    ("bf16", 8, 3, True, "tf32x3"), ("fp32", 1, 16, False, "tf32x3")]:
    torch_dtype = getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}.get(dtype, "float32"))
    cfg = triton_fwd.KernelConfig.make(dk, dv, torch_dtype)
    cfg = triton_fwd.KernelConfig(dk, dv, cfg.bk, cfg.bv, cfg.chunk, dtype != "fp32", prec)
    tiles = dict(BK=cfg.bk, BV=cfg.bv, NK=cfg.nk, DKP=tb.block_tile_k(dk))
    for fn, warps in [(tb._blk_state_kernel, cfg.num_warps), (tb._blk_scan_kernel, 4),
                      (tb._blk_output_kernel, tb.output_warps(cfg)), (tb._blk_empty_kernel, 4)]:
        consts = dict(DK=dk, DV=dv, C=cfg.chunk, IS_VARLEN=varlen, LOWP=cfg.lowp, PREC=cfg.prec, USE_H0=True,
                      STORE_HT=True, STORE_CKPT=True, **tiles)
        k = compile_kernel(fn, consts, dtype, scalars=SCALARS, states=STATES, warps=warps,
                           stages=triton_fwd.NUM_STAGES)
        if dtype == "bf16" and dk == dv and dk in (64, 128):
            print(f"ptxas D={dk} bf16 {fn.__name__} warps={warps} (registers, spill stores, spill loads) =",
                  ptxas_report(k), flush=True)
print("compiled")
"""


def test_block_kernels_compile_for_sm90():
    """Ahead-of-time compile (no GPU needed: triton ships ptxas) of the four block kernels for
    sm_90: bf16/fp16 tensor-core operands, both fp32 dot precisions, varlen on and off, small
    head dims. Prints ptxas's register/spill report for bf16 at D = 64 and 128 (pytest -s)."""
    out = sm90_aot.run(_AOT_SCRIPT)
    print(out)
    assert len(re.findall(r"^ptxas D=", out, re.M)) == 8, out
