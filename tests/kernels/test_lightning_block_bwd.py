"""Lightning backward with block-carried states (triton_bwd_block.py), in the Triton interpreter.

The block backward must return what the chunk backward (triton_bwd.py) returns: dq, dk, dv and
d(initial state), fp32 to ~1e-5 relative (the same sums in another order), and match the float64
autograd of the naive reference. Every launcher case runs on margined inputs (NaN around them), with
every buffer the launchers allocate NaN-poisoned and under the address guard (kernels/memcheck.py).
Small `block_chunks` and `chunk_size` put block starts, sequence starts and sequence ends at every
relative position with N <= 1024.
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

EXACT = 1e-5  # block vs chunk backward, fp32 (seen: ~1e-7)
REF = 1e-4  # vs the float64 reference


def _inputs(B, H, N, Dk, Dv, dtype=torch.float32, **kw):
    # Small decays (head 0: none), so gradients carried across whole blocks stay well above the
    # tolerance: with slopes ~0.3 they shrink by exp(-0.3 * 32) per block of 2 x 16 tokens, and a
    # wrong block carry went unseen.
    return lightning_inputs(B, H, N, Dk, Dv, dtype, slopes="small", **kw)


def _reference(q, k, v, slopes, init, do, dht, cu=None, scale=0.8):
    """float64 autograd of the naive oracle: {dq, dk, dv[, dh0]}."""
    xs = [t.double().requires_grad_() for t in (q, k, v)]
    h0 = None if init is None else init.double().requires_grad_()
    o, ht = lightning_attn_naive(*xs, slopes, scale=scale, initial_state=h0, output_final_state=True,
                                 cu_seqlens=cu)
    outs, grads = [o], [do.double()]
    if dht is not None:
        outs, grads = [o, ht], [do.double(), dht.double()]
    torch.autograd.backward(outs, grads)
    ref = {"dq": xs[0].grad, "dk": xs[1].grad, "dv": xs[2].grad}
    if h0 is not None:
        ref["dh0"] = h0.grad
    return ref


def both_backwards(q, k, v, slopes, init, do, dht, *, cu=None, chunk=16, window=None, nb=None):
    """The chunk and the block backward launchers on the same margined inputs (after the chunk
    forward, whose checkpoints the chunk backward needs), poisoned and guarded.
    Returns {"chunk": {dq, dk, dv[, dh0]}, "block": {...}}."""
    from vsuite_kernels.lightning.triton_bwd import lightning_backward
    from vsuite_kernels.lightning.triton_bwd_block import lightning_backward_block
    from vsuite_kernels.lightning.triton_fwd import ChunkTable, KernelConfig, StateWindows, lightning_forward

    m = {n: margined(t) for n, t in dict(q=q, k=k, v=v, s=slopes, h0=init, do=do, dht=dht, cu=cu).items()
         if t is not None}
    B, H, N, Dk = q.shape
    Dv = v.shape[-1]
    cfg = KernelConfig.make(Dk, Dv, q.dtype, chunk)
    table = ChunkTable.make(B, N, m.get("cu"), chunk)
    qkv = (q.numel() + k.numel() + v.numel()) * q.element_size()
    win = StateWindows.make(table, H, Dk, Dv, qkv, window, cfg.state_dtype.itemsize)
    want_dh0 = init is not None
    names = ("dq", "dk", "dv", "dh0")
    with poison(), guard_memory():
        _, _, ckpt = lightning_forward(m["q"], m["k"], m["v"], m["s"], m.get("h0"), 0.8, table, cfg, win, False)
        chunk_out = lightning_backward(m["q"], m["k"], m["v"], m["do"], m["s"], m.get("h0"), m.get("dht"), ckpt,
                                       0.8, table, cfg, win, want_dh0)
        block_out = lightning_backward_block(m["q"], m["k"], m["v"], m["do"], m["s"], m.get("h0"), m.get("dht"),
                                             0.8, table, cfg, want_dh0, nb)
    for name, view in m.items():
        assert margins_intact(view), f"a kernel wrote into the margin around {name}"
    out = {}
    for mode, got in (("chunk", chunk_out), ("block", block_out)):
        out[mode] = {n: x for n, x in zip(names, got) if x is not None}
        assert set(out[mode]) == {"dq", "dk", "dv"} | ({"dh0"} if want_dh0 else set())
        for n, x in out[mode].items():
            assert not torch.isnan(x).any(), f"NaN in {mode} {n}: a stray read or an unwritten element"
    return out


def check(q, k, v, slopes, init, do, dht, *, cu=None, ratio=REF, **kw):
    out = both_backwards(q, k, v, slopes, init, do, dht, cu=cu, **kw)
    ref = _reference(q, k, v, slopes, init, do, dht, cu)
    for n, x in out["block"].items():
        assert_close(f"{n} block vs chunk", out["chunk"][n].float(), x.float(), EXACT if q.dtype == torch.float32
                     else ratio)
        assert_close(f"{n} block vs float64", ref[n], x, ratio)
    return out


# (B, H, N, Dk, Dv, initial state, d(final state), chunk, chunks per block)
FIXED = [
    (1, 2, 1, 64, 64, True, True, 64, None),  # a single token
    (2, 2, 10, 16, 16, True, True, 16, 2),  # N < one chunk
    (2, 2, 63, 1, 1, True, True, 16, 3),  # D = 1; blocks straddle batch rows
    (1, 2, 100, 3, 8, False, True, 16, 2),  # D = 3, Dk != Dv, no initial state
    (2, 1, 130, 8, 3, True, False, 16, 3),  # N not a multiple of the chunk nor of the block; no d(final state)
    (1, 3, 160, 32, 48, True, True, 16, 5),  # H not a power of two
    (1, 2, 200, 48, 32, True, True, 16, 4),
    (1, 1, 257, 64, 128, True, True, 64, 2),  # Dv = 128 in the dq/dk tile, two Dv tiles for dv
    (1, 1, 200, 128, 64, False, False, 64, 1),  # Dk = 128: two Dk tiles for dq/dk; one chunk per block
    (1, 2, 1000, 32, 32, True, True, 64, None),  # the default block size (16 chunks: one block)
    (1, 1, 1024, 16, 16, True, True, 16, None),  # 64 chunks: the default picks blocks of 2
]


@pytest.mark.parametrize("B,H,N,Dk,Dv,h0,dht,chunk,nb", FIXED)
def test_block_backward_equals_chunk_backward(B, H, N, Dk, Dv, h0, dht, chunk, nb):
    q, k, v, slopes, init, do, d_ht = _inputs(B, H, N, Dk, Dv, h0=h0)
    check(q, k, v, slopes, init, do, d_ht if dht else None, chunk=chunk, nb=nb)


@pytest.mark.parametrize("lengths,nb,dht", [
    ((5, 0, 40, 3, 70, 0), 2, True),  # empty sequences in the middle and at the end
    ((0, 33, 0, 16, 17), 3, True),  # empty first sequence; several sequences inside one block
    ((1, 70, 129, 200), 5, False),  # long sequences crossing several blocks; no d(final state)
    ((0, 0), None, True),  # nothing at all: d(initial state) = d(final state)
])
def test_block_backward_varlen(lengths, nb, dht):
    q, k, v, slopes, init, do, d_ht = _inputs(1, 2, sum(lengths), 8, 16, n_states=len(lengths), seed=1)
    check(q, k, v, slopes, init, do, d_ht if dht else None, cu=cu_seqlens(lengths), nb=nb)


def test_block_backward_small_windows():
    """The chunk backward resumes from checkpoints every 2 chunks; the block one ignores them."""
    q, k, v, slopes, init, do, dht = _inputs(1, 2, 150, 16, 24)
    check(q, k, v, slopes, init, do, dht, window=2, nb=3)


@pytest.mark.parametrize("nb", [1, 5])
def test_block_size_does_not_change_gradients(nb):
    from vsuite_kernels.lightning.triton_bwd_block import lightning_backward_block
    from vsuite_kernels.lightning.triton_fwd import ChunkTable, KernelConfig

    q, k, v, slopes, init, do, dht = _inputs(1, 2, 300, 16, 16)
    cfg, table = KernelConfig.make(16, 16, q.dtype, 16), ChunkTable.make(1, 300, None, 16)
    one = lightning_backward_block(q, k, v, do, slopes, init, dht, 1.0, table, cfg, True, 64)
    got = lightning_backward_block(q, k, v, do, slopes, init, dht, 1.0, table, cfg, True, nb)
    for n, a, b in zip(("dq", "dk", "dv", "dh0"), one, got):
        assert_close(n, a, b, EXACT)


# ----------------------------------------------------------------------------------------------
# Through the autograd op, with either forward: the guarded fp64 comparison of the chunk path
# ----------------------------------------------------------------------------------------------


def _run_guarded(*args, **kw):
    from test_lightning_guard import run_guarded

    return run_guarded(*args, bwd_mode="block", **kw)


@pytest.mark.parametrize("fwd", ["chunk", "block"])
def test_op_fwd_bwd_guarded(fwd):
    _run_guarded(*_inputs(2, 2, 130, 24, 40), fwd_mode=fwd, chunk_size=16, state_window=3, block_chunks=3)


def test_op_varlen_guarded():
    lengths = (5, 0, 40, 3, 70, 0)
    inputs = _inputs(1, 2, sum(lengths), 8, 16, n_states=len(lengths), seed=1)
    _run_guarded(*inputs, cu_seqlens=cu_seqlens(lengths), chunk_size=16, fwd_mode="block", block_chunks=2)


def test_op_bf16_guarded():
    _run_guarded(*_inputs(1, 2, 200, 16, 8, torch.bfloat16), chunk_size=16, fwd_mode="block", block_chunks=3)


def test_bf16_launchers_agree():
    """bf16 inputs (the interpreter computes in fp32 and rounds on store): both backwards, and float64."""
    check(*_inputs(1, 2, 150, 32, 16, torch.bfloat16), chunk=16, nb=2, ratio=2e-2)


# ----------------------------------------------------------------------------------------------
# Selection: keyword, environment, fallback for Dk or Dv > 128
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def block_bwd_calls(monkeypatch):
    """The chunks per block of every block-backward launch."""
    from vsuite_kernels.lightning import triton_op

    monkeypatch.delenv("VSUITE_LIGHTNING_BWD", raising=False)
    monkeypatch.delenv("VSUITE_LIGHTNING_FWD", raising=False)
    return spy_on(monkeypatch, triton_op, "lightning_backward_block")


def _grads(q, k, v, slopes, init, do, dht, **kw):
    from vsuite_kernels.lightning.triton_op import lightning_attn_triton

    xs = [t.clone().requires_grad_() for t in (q, k, v)]
    h0 = init.clone().requires_grad_()
    o, ht = lightning_attn_triton(*xs, slopes, scale=0.8, initial_state=h0, output_final_state=True, chunk_size=16,
                                  **kw)
    torch.autograd.backward([o, ht], [do, dht])
    return {"dq": xs[0].grad, "dk": xs[1].grad, "dv": xs[2].grad, "dh0": h0.grad}


def test_selection(block_bwd_calls, monkeypatch):
    inputs = _inputs(1, 2, 40, 16, 16)
    ref = _reference(*inputs)
    for kw, env, block in [({}, None, False), (dict(bwd_mode="block"), None, True), ({}, "block", True),
                           (dict(bwd_mode="chunk"), "block", False), ({}, "chunk", False),
                           (dict(bwd_mode="block", fwd_mode="block"), None, True)]:
        if env is None:
            monkeypatch.delenv("VSUITE_LIGHTNING_BWD", raising=False)
        else:
            monkeypatch.setenv("VSUITE_LIGHTNING_BWD", env)
        block_bwd_calls.clear()
        got = _grads(*inputs, **kw)
        assert bool(block_bwd_calls) == block, (kw, env)
        for n in ref:
            assert_close(n, ref[n], got[n], REF)


@pytest.mark.parametrize("dk,dv", [(200, 16), (16, 200)])
def test_large_dims_fall_back_to_chunks(block_bwd_calls, dk, dv):
    inputs = _inputs(1, 1, 40, dk, dv)
    got = _grads(*inputs, bwd_mode="block")
    assert block_bwd_calls == []
    ref = _reference(*inputs)
    for n in ref:
        assert_close(n, ref[n], got[n], REF)


def test_rejects_bad_modes(monkeypatch):
    from vsuite_kernels.lightning.triton_op import lightning_attn_triton

    q, k, v, slopes, _, _, _ = _inputs(1, 1, 8, 16, 16, h0=False)
    with pytest.raises(ValueError, match="bwd_mode must be one of"):
        lightning_attn_triton(q, k, v, slopes, bwd_mode="blocks")
    monkeypatch.setenv("VSUITE_LIGHTNING_BWD", "fast")
    with pytest.raises(ValueError, match="VSUITE_LIGHTNING_BWD must be one of"):
        lightning_attn_triton(q, k, v, slopes)


def test_no_tokens_gives_the_final_state_gradient(block_bwd_calls):
    """N = 0: d(initial state) = d(final state), dq/dk/dv empty (the forward's empty-sequence kernel)."""
    inputs = list(_inputs(2, 2, 0, 8, 4))
    got = _grads(*inputs, bwd_mode="block")
    assert block_bwd_calls and got["dq"].shape == (2, 2, 0, 8)
    assert torch.equal(got["dh0"], inputs[-1])


# ----------------------------------------------------------------------------------------------
# Memory accounting
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lengths,fwd,nb", [(None, "chunk", None), (None, "block", 3),
                                            ((5, 0, 40, 3, 70, 0), "block", 2)])
def test_workspace_formula_matches_allocations(lengths, fwd, nb):
    from vsuite_kernels.lightning.triton_op import lightning_attn_triton, lightning_workspace_bytes

    B, H, Dk, Dv, chunk, N, cu = 2, 3, 24, 40, 16, 90, None
    if lengths is not None:
        B, N, cu = 1, sum(lengths), cu_seqlens(lengths)
    q, k, v, slopes, init, do, dht = _inputs(B, H, N, Dk, Dv, n_states=len(lengths or [0] * B))
    xs = [t.requires_grad_() for t in (q, k, v)]
    with record() as fwd_log:
        o, ht = lightning_attn_triton(*xs, slopes, initial_state=init, output_final_state=True, cu_seqlens=cu,
                                      chunk_size=chunk, state_window=2, fwd_mode=fwd, bwd_mode="block",
                                      block_chunks=nb)
    with record() as bwd_log:
        torch.autograd.backward([o, ht], [do, dht])
    assert {tag for role, tag, _ in bwd_log if role == "scratch"} == {"block_states", "block_dstates"}
    fwd_b = sum(n for role, _, n in fwd_log if role == "scratch")
    bwd_b = sum(n for role, _, n in bwd_log if role == "scratch")
    kw = dict(seq_lens=lengths, chunk_size=chunk, state_window=2, device="cpu", fwd_mode=fwd, bwd_mode="block",
              block_chunks=nb)
    assert lightning_workspace_bytes(B, H, N, Dk, Dv, torch.float32, "bwd", **kw) == bwd_b
    assert lightning_workspace_bytes(B, H, N, Dk, Dv, torch.float32, "fwdbwd", **kw) == fwd_b + bwd_b


def test_workspace_at_the_issue_shape(monkeypatch):
    """B1 H32 N64K D128 bf16: 64 blocks -> 2 x 128 MiB backward scratch; fwd+bwd under 1 GiB either way."""
    from vsuite_kernels.lightning.triton_op import lightning_workspace_bytes

    monkeypatch.delenv("VSUITE_LIGHTNING_FWD", raising=False)
    monkeypatch.delenv("VSUITE_LIGHTNING_BWD", raising=False)
    shape = (1, 32, 65536, 128, 128, torch.bfloat16)
    state = 32 * 128 * 128 * 4
    assert lightning_workspace_bytes(*shape, "bwd", bwd_mode="block") == 2 * 64 * state == 256 << 20
    assert lightning_workspace_bytes(*shape, "bwd", bwd_mode="block") < lightning_workspace_bytes(*shape, "bwd")
    for fwd in ("chunk", "block"):
        assert lightning_workspace_bytes(*shape, "fwdbwd", fwd_mode=fwd, bwd_mode="block") <= 1 << 30
    monkeypatch.setenv("VSUITE_LIGHTNING_BWD", "block")  # the benchmarks' switch counts too
    assert lightning_workspace_bytes(*shape, "bwd") == 256 << 20


# ----------------------------------------------------------------------------------------------
# Compiled for sm_90 ahead of time: the code the interpreter never sees, and ptxas's report
# ----------------------------------------------------------------------------------------------


_AOT_SCRIPT = r"""
import torch
from sm90_aot import compile_kernel, ptxas_report
from vsuite_kernels.lightning import triton_fwd, triton_bwd_block as bb
from vsuite_kernels.lightning.triton_fwd_block import block_tile_k

SCALARS = dict(T="i32", H="i32", G="i32", NB="i32", NBLK="i32", scale="fp32")
STATES = ("slopes", "h0", "hb", "dht", "dhb", "dh0")

for dtype, dk, dv, varlen, prec in [("bf16", 128, 128, False, "tf32x3"), ("bf16", 64, 64, False, "tf32x3"),
                                    ("fp16", 96, 48, True, "tf32x3"), ("fp32", 128, 64, True, "tf32"),
                                    ("bf16", 8, 3, True, "tf32x3"), ("fp32", 1, 16, False, "tf32x3")]:
    torch_dtype = getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}.get(dtype, "float32"))
    cfg = triton_fwd.KernelConfig.make(dk, dv, torch_dtype)
    cfg = triton_fwd.KernelConfig(dk, dv, cfg.bk, cfg.bv, cfg.chunk, dtype != "fp32", prec)
    bk, bv = bb.split_tiles(cfg)
    dkp, dvp = block_tile_k(dk), block_tile_k(dv)
    for fn, warps, tiles in [
            (bb._bblk_dstate_kernel, cfg.num_warps, dict(BK=cfg.bk, BV=cfg.bv, NK=cfg.nk)),
            (bb._bblk_dscan_kernel, 4, dict(BK=cfg.bk, BV=cfg.bv, NK=cfg.nk)),
            (bb._bblk_dq_kernel, bb.walk_warps(cfg, dvp, bk), dict(BK=bk, DVP=dvp)),
            (bb._bblk_dk_kernel, bb.walk_warps(cfg, dvp, bk), dict(BK=bk, DVP=dvp)),
            (bb._bblk_dv_kernel, bb.walk_warps(cfg, dkp, bv), dict(DKP=dkp, BV=bv))]:
        consts = dict(DK=dk, DV=dv, C=cfg.chunk, IS_VARLEN=varlen, LOWP=cfg.lowp, PREC=cfg.prec, USE_H0=True,
                      USE_DHT=True, STORE_DH0=True, **tiles)
        k = compile_kernel(fn, consts, dtype, scalars=SCALARS, states=STATES, warps=warps, stages=bb.WALK_STAGES)
        if dtype == "bf16" and dk == dv and dk in (64, 128):
            print(f"ptxas D={dk} bf16 {fn.__name__} warps={warps} (registers, spill stores, spill loads) =",
                  ptxas_report(k), flush=True)
print("compiled")
"""


def test_block_bwd_kernels_compile_for_sm90():
    """Ahead-of-time compile (no GPU needed: triton ships ptxas) of the five block-backward kernels
    for sm_90: bf16/fp16 tensor-core operands, both fp32 dot precisions, varlen on and off, small
    head dims. Prints ptxas's register/spill report for bf16 at D = 64 and 128 (pytest -s)."""
    out = sm90_aot.run(_AOT_SCRIPT)
    print(out)
    assert len(re.findall(r"^ptxas D=", out, re.M)) == 10, out
