"""Lightning Attention, Triton path: forward and backward against the float64 naive oracle.

On a machine without a GPU the kernels run through the Triton interpreter (conftest.py sets
TRITON_INTERPRET=1 before triton is imported), so shapes stay small: a few parametrized
cases cover ragged chunks, non-power-of-two and unequal head dims, Dk = 256, no decay,
initial/final states with upstream gradients, varlen packing and fp16/bf16 inputs.
`test_kernels_compile_for_sm90` compiles every kernel for a real GPU target ahead of time,
which checks the compiled-mode code (including the fp16/bf16 tensor-core path) that the
interpreter never sees.
"""


import pytest
import sm90_aot
import torch
from lightning_cases import cu_seqlens, lightning_inputs

from vsuite_kernels.lightning import lightning_attn, lightning_attn_naive
from vsuite_kernels.testing import assert_close

pytestmark = pytest.mark.triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RATIO = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 2e-2}


def _triton():
    from vsuite_kernels.lightning.triton_op import lightning_attn_triton

    return lightning_attn_triton


def make_inputs(B, H, N, Dk, Dv, dtype, *, decay=True, **kw):
    return lightning_inputs(B, H, N, Dk, Dv, dtype, slopes="rand" if decay else None, device=DEVICE, **kw)


def run_both(q, k, v, slopes, init, do, dht, *, scale=1.0, cu_seqlens=None, **kw):
    """Forward + backward of the Triton op and of the fp64 naive oracle with the same upstream
    gradients (on o and on the final state). Returns {name: (reference, triton)}."""
    out = {}
    for name, fn, dt in (("ref", lightning_attn_naive, torch.float64), ("tri", _triton(), None)):
        xs = [t.detach().to(dt or t.dtype).requires_grad_() for t in (q, k, v)]
        h0 = None if init is None else init.detach().to(dt or init.dtype).requires_grad_()
        o, ht = fn(*xs, slopes, scale=scale, initial_state=h0, output_final_state=True,
                   cu_seqlens=cu_seqlens, **({} if dt else kw))
        loss = (o.double() * do.double()).sum() + (ht.double() * dht.double()).sum()
        loss.backward()
        res = {"o": o, "final_state": ht, "dq": xs[0].grad, "dk": xs[1].grad, "dv": xs[2].grad}
        if h0 is not None:
            res["d_initial_state"] = h0.grad
        out[name] = res
    assert out["tri"]["o"].dtype == q.dtype and out["tri"]["final_state"].dtype == torch.float32
    return {n: (out["ref"][n], out["tri"][n]) for n in out["ref"]}


def check_all(pairs, ratio):
    for name, (ref, x) in pairs.items():
        assert_close(name, ref, x, ratio)


# (B, H, N, Dk, Dv, decay, initial state)
SHAPES = [
    (1, 2, 1, 64, 64, True, True),  # a single token
    (2, 2, 63, 16, 48, False, True),  # no decay, one ragged chunk, Dk != Dv
    (1, 3, 64, 48, 96, True, False),  # exactly one chunk, H not a power of two, D not either
    (2, 1, 130, 128, 64, True, True),  # 3 chunks, ragged tail
    (1, 1, 70, 256, 96, True, True),  # Dk = 256 (LRPE doubles Dk): 4 Dk tiles
    (1, 2, 100, 8, 3, True, True),  # head dims below 16: padded blocks with masks
    (1, 2, 257, 96, 128, True, True),  # Dv = 128 in two 64-wide tiles, one token past 4 chunks
    (1, 1, 130, 200, 48, True, True),  # Dk = 200: 4 Dk tiles, the last one partial
    (1, 2, 1000, 64, 64, True, True),  # 16 chunks
]


@pytest.mark.parametrize("B,H,N,Dk,Dv,decay,h0", SHAPES)
def test_matches_naive_fp32(B, H, N, Dk, Dv, decay, h0):
    check_all(run_both(*make_inputs(B, H, N, Dk, Dv, torch.float32, decay=decay, h0=h0), scale=0.8),
              RATIO[torch.float32])


@pytest.mark.parametrize("dtype,N,Dk,Dv", [
    (torch.float16, 130, 64, 48),
    (torch.bfloat16, 130, 64, 48),
    (torch.bfloat16, 1000, 128, 128),
    (torch.float16, 63, 256, 16),
])
def test_matches_naive_low_precision(dtype, N, Dk, Dv):
    check_all(run_both(*make_inputs(1, 2, N, Dk, Dv, dtype)), RATIO[dtype])


@pytest.mark.parametrize("lengths,dtype", [
    ((1, 70, 129), torch.float32),
    ((1, 70, 129), torch.bfloat16),
    ((1, 70, 129), torch.float16),
    ((5, 0, 64, 3), torch.float32),  # an empty sequence: its final state is its initial state
])
def test_varlen(lengths, dtype):
    cu = cu_seqlens(lengths, DEVICE)
    inputs = make_inputs(1, 2, sum(lengths), 32, 48, dtype, n_states=len(lengths), seed=1)
    check_all(run_both(*inputs, cu_seqlens=cu), RATIO[dtype])


def test_small_chunk_size():
    """chunk_size=16 walks many chunks cheaply: the state recurrence across 13 boundaries."""
    check_all(run_both(*make_inputs(1, 2, 200, 32, 16, torch.float32), chunk_size=16), RATIO[torch.float32])


def test_gradient_through_final_state_only():
    """o unused: its gradient arrives as None; only d(final state) drives the backward."""
    q, k, v, slopes, init, _, dht = make_inputs(1, 2, 90, 32, 32, torch.float32)
    grads = {}
    for name, fn, dt in (("ref", lightning_attn_naive, torch.float64), ("tri", _triton(), torch.float32)):
        xs = [t.to(dt).requires_grad_() for t in (q, k, v, init)]
        _, ht = fn(*xs[:3], slopes, initial_state=xs[3], output_final_state=True)
        (ht.double() * dht.double()).sum().backward()
        grads[name] = [torch.zeros_like(x) if x.grad is None else x.grad for x in xs]
    for name, ref, x in zip(("dq", "dk", "dv", "d_initial_state"), grads["ref"], grads["tri"]):
        assert_close(name, ref, x, RATIO[torch.float32])
    assert grads["tri"][0].abs().max() == 0  # q never reaches the final state


def test_no_final_state_and_no_grad():
    q, k, v, slopes, init, _, _ = make_inputs(2, 2, 40, 16, 32, torch.float32)
    o, ht = _triton()(q, k, v, slopes, initial_state=init)
    ref, _ = lightning_attn_naive(q.double(), k.double(), v.double(), slopes, initial_state=init.double())
    assert ht is None
    assert_close("o", ref, o, RATIO[torch.float32])


def test_dispatcher_reaches_triton(monkeypatch):
    from vsuite_kernels.lightning import triton_op

    calls = []
    original = triton_op.lightning_attn_triton

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(triton_op, "lightning_attn_triton", spy)
    q, k, v, slopes, init, _, _ = make_inputs(1, 2, 20, 16, 16, torch.float32)
    o, ht = lightning_attn(q, k, v, slopes, initial_state=init, output_final_state=True, impl="triton")
    assert len(calls) == 1 and ht is not None
    ref, ref_ht = lightning_attn_naive(q, k, v, slopes, initial_state=init, output_final_state=True)
    assert_close("o", ref, o, RATIO[torch.float32])
    assert_close("final_state", ref_ht, ht, RATIO[torch.float32])


def test_rejects_bad_arguments():
    q, k, v, slopes, _, _, _ = make_inputs(1, 1, 8, 16, 16, torch.float32, h0=False)
    with pytest.raises(ValueError, match="fp32/fp16/bf16"):
        _triton()(q.double(), k.double(), v.double(), slopes)
    with pytest.raises(ValueError, match="chunk_size"):
        _triton()(q, k, v, slopes, chunk_size=48)
    with pytest.raises(ValueError, match="initial_state"):
        _triton()(q, k, v, slopes, initial_state=torch.zeros(1, 1, 16, 8, device=DEVICE))


_AOT_SCRIPT = r"""
import torch
from sm90_aot import compile_kernel
from vsuite_kernels.lightning import triton_bwd, triton_fwd

KERNELS = [
    (triton_fwd._fwd_state_kernel, dict(USE_H0=True, STORE_HT=True, STORE_CKPT=True)),
    (triton_fwd._fwd_output_kernel, dict(NK=None)),
    (triton_bwd._bwd_dstate_kernel, dict(USE_DHT=True, STORE_DH0=True)),
    (triton_bwd._bwd_dqk_kernel, dict(NV=None)),
    (triton_bwd._bwd_dv_kernel, dict(NK=None)),
]
SCALARS = dict(T="i32", H="i32", scale="fp32", ga="i32", gb="i32", n_lo="i32", w="i32")
STATES = ("slopes", "h0", "h", "ht", "ckpt", "dh", "dht", "dh0", "dcarry")
for dtype, torch_name, dk, dv, varlen, prec in [("bf16", "bfloat16", 128, 128, False, "tf32x3"),
                                                ("fp16", "float16", 200, 48, True, "tf32x3"),
                                                ("fp32", "float32", 96, 256, True, "tf32"),
                                                ("bf16", "bfloat16", 8, 3, False, "tf32x3"),
                                                ("fp32", "float32", 16, 16, True, "tf32x3")]:
    cfg = triton_fwd.KernelConfig.make(dk, dv, getattr(torch, torch_name))
    cfg = triton_fwd.KernelConfig(dk, dv, cfg.bk, cfg.bv, cfg.chunk, dtype != "fp32", prec)
    for fn, extra in KERNELS:
        consts = dict(DK=dk, DV=dv, C=cfg.chunk, BK=cfg.bk, BV=cfg.bv, IS_VARLEN=varlen, LOWP=cfg.lowp,
                      PREC=cfg.prec, **{n: (cfg.nk if n == "NK" else cfg.nv) if v is None else v
                                        for n, v in extra.items()})
        compile_kernel(fn, consts, dtype, scalars=SCALARS, states=STATES, warps=cfg.num_warps,
                       stages=triton_fwd.NUM_STAGES, bf16_states=("h", "dh") if dtype == "bf16" else ())
print("compiled")
"""


def test_kernels_compile_for_sm90():
    """Ahead-of-time compile (no GPU needed: triton ships ptxas) of every kernel for sm_90, with
    fp16/bf16 tensor-core operands, both dot precisions, varlen on and off, small head dims."""
    sm90_aot.run(_AOT_SCRIPT)
