"""Out-of-bounds guards and memory accounting for the Lightning Triton kernels (interpreter).

On an H200 head dims <= 16 died with "an illegal memory access" while the interpreter tests
passed, because the interpreter reads whatever a masked-in address holds. Here every Triton
call runs (1) on inputs that are views into larger buffers whose margins hold NaN, (2) with
every buffer the launchers allocate pre-filled with NaN (`buffers.poison`), and (3) under
`memcheck.guard_memory`, which fails any masked-in load or store outside the kernel's tensor
arguments. A test fails if a margin changes, a NaN reaches a result, or an address strays.
All five kernels (states, outputs, state gradients, dq/dk, dv) run in every case, with varlen
packing and state windows (checkpoints between windows) included.

The memory half: `lightning_workspace_bytes` must equal the scratch the launchers actually
allocate, stay under 1 GiB at B1 H32 N64K D128 bf16 and grow no faster than q, k, v.
"""

import pytest
import torch
from lightning_cases import cu_seqlens, lightning_inputs

from vsuite_kernels.lightning import lightning_attn_naive
from vsuite_kernels.lightning.buffers import alloc, poison, record
from vsuite_kernels.memcheck import guard_memory, margined, margins_intact
from vsuite_kernels.testing import assert_close

pytestmark = pytest.mark.triton

RATIO = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def _triton():
    from vsuite_kernels.lightning.triton_op import lightning_attn_triton

    return lightning_attn_triton


def _inputs(B, H, N, Dk, Dv, dtype, *, decay=True, **kw):
    return lightning_inputs(B, H, N, Dk, Dv, dtype, slopes="rand" if decay else None, **kw)


def run_guarded(q, k, v, slopes, init, do, dht, *, cu_seqlens=None, **kw):
    """Triton fwd+bwd on margined inputs with poisoned buffers under the address guard, checked
    against the float64 naive oracle. Returns the Triton results."""
    ref = {}
    xs = [t.double().requires_grad_() for t in (q, k, v)]
    h0 = None if init is None else init.double().requires_grad_()
    o, ht = lightning_attn_naive(*xs, slopes, initial_state=h0, output_final_state=True, cu_seqlens=cu_seqlens)
    torch.autograd.backward([o, ht], [do.double(), dht.double()])
    ref = {"o": o, "final_state": ht, "dq": xs[0].grad, "dk": xs[1].grad, "dv": xs[2].grad}
    if h0 is not None:
        ref["d_initial_state"] = h0.grad

    m = {name: margined(t) for name, t in dict(q=q, k=k, v=v, slopes=slopes, init=init, do=do, dht=dht,
                                                 cu=cu_seqlens).items() if t is not None}
    mq, mk, mv = (m[n].requires_grad_() for n in "qkv")
    mh0 = m["init"].requires_grad_() if init is not None else None
    with poison(), guard_memory():
        o, ht = _triton()(mq, mk, mv, m.get("slopes"), initial_state=mh0, output_final_state=True,
                          cu_seqlens=m.get("cu"), **kw)
        torch.autograd.backward([o, ht], [m["do"], m["dht"]])
    got = {"o": o, "final_state": ht, "dq": mq.grad, "dk": mk.grad, "dv": mv.grad}
    if mh0 is not None:
        got["d_initial_state"] = mh0.grad
    for name, view in m.items():
        assert margins_intact(view), f"a kernel wrote into the margin around {name}"
    for name, x in got.items():
        assert not torch.isnan(x).any(), f"NaN in {name}: a stray read or an unwritten element"
        assert_close(name, ref[name], x, RATIO[q.dtype])
    return got


# (B, H, N, Dk, Dv, decay, initial state, state window in chunks or None)
SHAPES = [
    (1, 2, 1, 64, 64, True, True, None),  # a single token
    (2, 2, 63, 16, 48, False, True, None),  # no decay, one ragged chunk, Dk = 16
    (1, 3, 64, 48, 96, True, False, None),  # exactly one chunk, H not a power of two
    (2, 1, 130, 128, 64, True, True, 1),  # 3 chunks per row, one chunk per state window
    (1, 1, 70, 256, 96, True, True, None),  # Dk = 256: 4 Dk tiles
    (1, 2, 257, 96, 128, True, True, 2),  # Dv in two tiles, windows of 2 chunks, last one short
    (1, 1, 130, 200, 48, True, True, None),  # Dk = 200: the last Dk tile partial
    # the head dims that crashed on the GPU, and smaller
    (1, 2, 100, 8, 3, True, True, None),
    (1, 2, 100, 8, 8, True, True, None),
    (1, 2, 100, 16, 16, True, True, None),
    (1, 2, 100, 16, 3, True, True, None),
    (2, 2, 100, 1, 1, True, True, None),
    (1, 2, 100, 3, 1, False, True, 1),
    (1, 2, 100, 1, 8, True, False, None),
]


@pytest.mark.parametrize("B,H,N,Dk,Dv,decay,h0,window", SHAPES)
def test_guarded_fp32(B, H, N, Dk, Dv, decay, h0, window):
    run_guarded(*_inputs(B, H, N, Dk, Dv, torch.float32, decay=decay, h0=h0), state_window=window)


@pytest.mark.parametrize("lengths,chunk,window", [
    ((1, 70, 129), 64, None),
    ((5, 0, 40, 3, 70, 0), 16, 3),  # sequences crossing 1 and 2 window starts, empty ones at the edges
    ((0, 33, 0, 16, 17), 16, 1),  # one chunk per window, empty first sequence
])
def test_guarded_varlen(lengths, chunk, window):
    cu = cu_seqlens(lengths)
    inputs = _inputs(1, 2, sum(lengths), 8, 16, torch.float32, n_states=len(lengths), seed=1)
    run_guarded(*inputs, cu_seqlens=cu, chunk_size=chunk, state_window=window)


def test_guarded_bf16_windows():
    run_guarded(*_inputs(1, 2, 200, 16, 8, torch.bfloat16), chunk_size=16, state_window=4)


def test_windowed_equals_one_window():
    """Windows only change where states live, not the arithmetic: results agree bit for bit."""
    q, k, v, slopes, init, _, _ = _inputs(2, 2, 150, 32, 16, torch.float32)
    one = _triton()(q, k, v, slopes, initial_state=init, output_final_state=True, chunk_size=16)
    many = _triton()(q, k, v, slopes, initial_state=init, output_final_state=True, chunk_size=16, state_window=3)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


# ----------------------------------------------------------------------------------------------
# The guards themselves must fail on a bad kernel
# ----------------------------------------------------------------------------------------------


def _shifted_copy():
    import triton
    import triton.language as tl

    @triton.jit
    def _copy_next(x, y, N, BLOCK: tl.constexpr):
        o = tl.arange(0, BLOCK)
        tl.store(y + o, tl.load(x + o + 1, mask=o < N), mask=o < N)  # reads x[1..N]: one past the end

    def run(x):
        y = torch.zeros_like(x)
        _copy_next[(1,)](x, y, x.numel(), BLOCK=32)
        return y

    return run


def test_margin_catches_an_over_read():
    x = margined(torch.arange(10, dtype=torch.float32))
    y = _shifted_copy()(x)
    assert torch.isnan(y[-1]) and not torch.isnan(y[:-1]).any()


def test_guard_catches_an_over_read():
    x = margined(torch.arange(10, dtype=torch.float32))
    with guard_memory(), pytest.raises(Exception, match="outside every tensor argument"):
        _shifted_copy()(x)
    _shifted_copy()(x)  # the guard is gone after the block


def test_margins_intact_sees_a_write():
    x = margined(torch.zeros(5))
    assert margins_intact(x)
    x.view(-1).as_strided((1,), (1,), x.storage_offset() + 5).fill_(1.0)  # one past the end
    assert not margins_intact(x)


def test_poison_fills_buffers():
    with poison():
        t = alloc((3, 4), torch.float32, "cpu", role="scratch", tag="t")
    assert torch.isnan(t).all()


# ----------------------------------------------------------------------------------------------
# Memory accounting
# ----------------------------------------------------------------------------------------------


def _ws(*args, **kw):
    from vsuite_kernels.lightning.triton_op import lightning_workspace_bytes

    return lightning_workspace_bytes(*args, **kw)


def _scratch(log):
    return sum(n for role, _, n in log if role == "scratch")


@pytest.mark.parametrize("lengths,window", [(None, None), (None, 2), ((5, 0, 40, 3, 70, 0), 3)])
def test_workspace_formula_matches_allocations(lengths, window):
    B, H, Dk, Dv, chunk = 2, 3, 24, 40, 16
    cu = None
    if lengths is not None:
        B, N = 1, sum(lengths)
        cu = cu_seqlens(lengths)
    else:
        N = 90
    q, k, v, slopes, init, do, dht = _inputs(B, H, N, Dk, Dv, torch.float32, n_states=len(lengths or [0] * B))
    xs = [t.requires_grad_() for t in (q, k, v)]
    with record() as fwd_log:
        o, ht = _triton()(*xs, slopes, initial_state=init, output_final_state=True, cu_seqlens=cu,
                          chunk_size=chunk, state_window=window)
    with record() as bwd_log:
        torch.autograd.backward([o, ht], [do, dht])
    kw = dict(seq_lens=lengths, chunk_size=chunk, state_window=window, device="cpu")  # the interpreter
    fwd, bwd = _scratch(fwd_log), _scratch(bwd_log)
    assert fwd > 0 and bwd > 0
    assert _ws(B, H, N, Dk, Dv, torch.float32, "fwd", **kw) == fwd
    assert _ws(B, H, N, Dk, Dv, torch.float32, "bwd", **kw) == bwd
    assert _ws(B, H, N, Dk, Dv, torch.float32, "fwdbwd", **kw) == fwd + bwd


def test_workspace_at_the_issue_shape():
    """B1 H32 N65536 D128 bf16: per-chunk states were 2 GiB forward and 4 GiB backward."""
    total = _ws(1, 32, 65536, 128, 128, torch.bfloat16, "fwdbwd")
    assert total <= 1 << 30
    per_chunk_states = 32 * 1024 * 128 * 128 * 4  # one buffer of every chunk's states: 2 GiB
    old_bwd = 2 * per_chunk_states  # h and dh for every chunk
    assert _ws(1, 32, 65536, 128, 128, torch.bfloat16, "bwd") <= old_bwd // 4


@pytest.mark.parametrize("grow", ["seq", "batch", "heads"])
def test_workspace_grows_no_faster_than_qkv(grow):
    """Doubling N, B or H (from 4K tokens up to 1M) at most doubles the scratch, like q, k, v."""
    shape = dict(batch=1, heads=32, seq=4096)
    for _ in range(8):
        before = _ws(shape["batch"], shape["heads"], shape["seq"], 128, 128, torch.bfloat16, "fwdbwd")
        shape[grow] *= 2
        after = _ws(shape["batch"], shape["heads"], shape["seq"], 128, 128, torch.bfloat16, "fwdbwd")
        assert before < after <= 2 * before, (grow, shape, before, after)


def test_poison_switch_from_the_environment(monkeypatch):
    monkeypatch.setenv("VSUITE_KERNELS_POISON", "1")
    assert torch.isnan(alloc((2, 2), torch.float32, "cpu", role="out", tag="t")).all()
    with poison(False):  # a test may force it off
        from vsuite_kernels.lightning.buffers import poisoning

        assert not poisoning()
