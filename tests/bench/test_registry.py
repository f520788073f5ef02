"""The implementation registry: FLOP and byte formulas against hand-computed values,
availability reasons, workloads per mode, and the reference checks."""

from __future__ import annotations

import math

import pytest
import torch

from vsuite.bench import registry
from vsuite.bench.registry import Case

CPU = torch.device("cpu")


def case(n, d=16, b=2, h=3, dtype=torch.float32, mode="fwd"):
    return Case(b, h, n, d, dtype, CPU, mode)


def test_every_impl_is_registered_with_its_op():
    ops = {name: registry.get(name).op for name in registry.names()}
    assert ops == {
        "lightning-triton": "lightning_attn", "lightning-torch": "lightning_attn", "linear-naive": "lightning_attn",
        "sdpa": "softmax_attn", "lightning-official": "lightning_attn", "fla-simple-gla": "lightning_attn",
        "toeplitz-fft": "toeplitz", "toeplitz-dense": "toeplitz",
    }
    assert registry.get("sdpa").exponent == 2 and registry.get("linear-naive").exponent == 2
    assert registry.get("lightning-torch").exponent == 1 and registry.get("toeplitz-fft").exponent == 1


@pytest.mark.parametrize("chunk, fwd, bwd", [(64, 98_304, 245_760), (128, 131_072, 327_680), (256, 196_608, 491_520)])
def test_chunk_flops_per_token_head_match_the_reference_table(chunk, fwd, bwd):
    # linear-attention.md §6.2, d = e = 128
    n = 65536
    assert registry.lightning_chunk_fwd_flops(n, 128, 128, chunk) == fwd * n
    assert registry.lightning_kernel_bwd_flops(n, 128, 128, chunk) == bwd * n


def test_sol_example_per_bh_at_64k():
    # §6.3: forward 6.44 GFLOP per (b,h) at n=65536, C=64
    assert registry.lightning_chunk_fwd_flops(65536, 128, 128, 64) == pytest.approx(6.44e9, rel=1e-3)


def test_lightning_torch_flops_by_mode():
    impl = registry.get("lightning-torch")
    # N=100 < C=128: C is capped at N. Per (b,h): 2*100*100*32 + 4*100*16*16 = 640000 + 102400
    per_bh = 742_400
    assert impl.flops(case(100)) == 6 * per_bh
    assert impl.flops(case(100, mode="bwd")) == 2 * 6 * per_bh  # torch autograd: 2 x fwd
    assert impl.flops(case(100, mode="fwdbwd")) == 3 * 6 * per_bh
    # N=1000, C=128: 2*1000*128*32 + 4*1000*256
    assert impl.flops(case(1000, b=1, h=1)) == 8_192_000 + 1_024_000


def test_triton_style_flops():
    for name in ("lightning-triton", "lightning-official", "fla-simple-gla"):
        impl = registry.get(name)
        c = case(1000, d=64, b=1, h=1)
        # C=64: fwd 2*1000*64*128 + 4*1000*64*64; bwd 2*1000*64*(3*64+2*64) + 10*1000*64*64
        assert impl.flops(c) == 16_384_000 + 16_384_000, name
        assert impl.flops(case(1000, d=64, b=1, h=1, mode="bwd")) == 40_960_000 + 40_960_000, name


def test_quadratic_flops():
    c = case(100)  # B2 H3 D16
    assert registry.get("linear-naive").flops(c) == 6 * 2 * 100 * 100 * 32
    assert registry.get("linear-naive").flops(case(100, mode="bwd")) == 2 * 6 * 2 * 100 * 100 * 32
    assert registry.get("sdpa").flops(c) == 6 * 2 * 100 * 100 * 16  # causal: half of 4 N^2 D
    assert registry.get("sdpa").flops(case(100, mode="bwd")) == 2.5 * 6 * 2 * 100 * 100 * 16
    assert registry.get("toeplitz-dense").flops(c) == 6 * 2 * 100 * 100 * 16


def test_toeplitz_fft_flops():
    # N=4: L=8, three FFTs at 2.5*8*3 = 60 each, plus 6*(4+1) = 30 -> 210 per channel
    assert registry.toeplitz_fft_fwd_flops_per_channel(4) == 210
    assert registry.get("toeplitz-fft").flops(case(4)) == 2 * 3 * 16 * 210
    assert registry.get("toeplitz-fft").flops(case(4, mode="fwdbwd")) == 3 * 2 * 3 * 16 * 210
    n = 4096
    assert registry.toeplitz_fft_fwd_flops_per_channel(n) == pytest.approx(3 * 2.5 * 2 * n * math.log2(2 * n) + 6 * (n + 1))


def test_bytes_minimal_traffic():
    # reference §6.2: bf16, d = e = 128: fwd 1024 B, bwd 1792 B per token-head
    impl = registry.get("lightning-torch")
    assert impl.bytes(Case(1, 1, 1, 128, torch.bfloat16, CPU, "fwd")) == 1024
    assert impl.bytes(Case(1, 1, 1, 128, torch.bfloat16, CPU, "bwd")) == 1792
    assert impl.bytes(Case(1, 1, 1, 128, torch.bfloat16, CPU, "fwdbwd")) == 1024 + 1792
    assert registry.get("sdpa").bytes(Case(2, 3, 10, 128, torch.float32, CPU, "fwd")) == 2 * 3 * 10 * 2048
    # toeplitz fwd: read x [B,H,N,D] and coeffs [H,N,D], write o; bwd: read x, coeffs, dO, write dx, dcoeffs
    tz = registry.get("toeplitz-fft")
    assert tz.bytes(case(10)) == (2 * 2 * 3 * 10 * 16 + 3 * 10 * 16) * 4
    assert tz.bytes(case(10, mode="bwd")) == (3 * 2 * 3 * 10 * 16 + 2 * 3 * 10 * 16) * 4


def test_availability_reasons_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert registry.get("lightning-torch").availability("cpu") is None
    assert registry.get("sdpa").availability("cpu") is None
    assert "CUDA" in registry.get("lightning-triton").availability("cpu")
    assert registry.get("fla-simple-gla").availability("cpu")  # never runs on CPU
    reason = registry.get("lightning-official").availability("cpu")
    assert reason and ("not installed" in reason or "CUDA" in reason)


@pytest.mark.parametrize("mode", ["fwd", "bwd", "fwdbwd"])
def test_workload_runs_each_mode(mode):
    work = registry.get("lightning-torch").build(case(40, mode=mode), seed=0)
    work.call()
    work.call()
    if mode != "fwd":
        q = work.keep[0]
        assert q.grad is not None and q.grad.shape == q.shape


def test_impls_are_keyword_built_and_carry_forward_and_reference():
    import dataclasses

    impl = registry.get("linear-naive")
    assert dataclasses.fields(impl)[0].kw_only  # Impl(name=..., op=..., ...) only
    assert impl.kind == "reference" and impl.quadratic and not registry.get("lightning-torch").quadratic
    assert registry.get("toeplitz-fft").complexity == "n log n" and not registry.get("toeplitz-fft").quadratic
    for name in registry.names():
        got = registry.get(name)
        assert callable(got.forward) and callable(got.reference) and callable(got.make_inputs), name
        assert got.reference_name, name
    assert "recurrence" in impl.reference_name and "lag" in registry.get("toeplitz-dense").reference_name


def test_decay_recurrence_by_hand():
    # one head, D=1, N=3, decay lam = exp(-s) = 0.5: o_t = q_t * sum_{u<=t} lam^(t-u) k_u v_u
    q = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).view(1, 1, 3, 1)
    k = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64).view(1, 1, 3, 1)
    v = torch.tensor([2.0, 3.0, 1.0], dtype=torch.float64).view(1, 1, 3, 1)
    slopes = torch.tensor([math.log(2.0)], dtype=torch.float64)
    o = registry.decay_recurrence(q, k, v, slopes).flatten().tolist()
    # S_0 = 2; S_1 = 0.5*2 - 3 = -2; S_2 = 0.5*(-2) + 2 = 1  ->  o = [1*2, 2*(-2), 3*1]
    assert o == pytest.approx([2.0, -4.0, 3.0])
    # two value channels and a 2-dim key: S is an outer-product sum, o_t = q_t S_t
    q2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).view(1, 1, 2, 2)
    k2 = torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=torch.float64).view(1, 1, 2, 2)
    v2 = torch.tensor([[1.0, -1.0], [2.0, 5.0]], dtype=torch.float64).view(1, 1, 2, 2)
    got = registry.decay_recurrence(q2, k2, v2, torch.zeros(1, dtype=torch.float64))[0, 0]
    # S_0 = k0^T v0 = [[1, -1], [2, -2]]; o_0 = [1, 0] S_0 = [1, -1]
    # S_1 = S_0 + k1^T v1 = [[1+6, -1+15], [2, -2]]; o_1 = [0, 1] S_1 = [2, -2]
    assert got.tolist() == [[1.0, -1.0], [2.0, -2.0]]


def test_toeplitz_by_lags_by_hand():
    # one channel, N=3, coeffs t = [1, 10, 100] (lags 0, 1, 2), x = [1, 2, 3]:
    # o_0 = 1*1; o_1 = 1*2 + 10*1; o_2 = 1*3 + 10*2 + 100*1
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).view(1, 1, 3, 1)
    t = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64).view(1, 3, 1)
    assert registry.causal_toeplitz_by_lags(x, t).flatten().tolist() == [1.0, 12.0, 123.0]


def test_softmax_reference_by_hand():
    # N=2, D=1, q = [1, 1], k = [0, ln 3]: token 0 sees only itself (causal mask)
    q = torch.tensor([1.0, 1.0], dtype=torch.float64).view(1, 1, 2, 1)
    k = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64).view(1, 1, 2, 1)
    v = torch.tensor([4.0, 8.0], dtype=torch.float64).view(1, 1, 2, 1)
    # token 1: weights exp(0) : exp(ln 3) = 1 : 3 -> (4 + 24) / 4 = 7
    assert registry.softmax_reference(q, k, v).flatten().tolist() == pytest.approx([4.0, 7.0])


@pytest.mark.parametrize("name", ["lightning-torch", "linear-naive", "sdpa", "toeplitz-fft", "toeplitz-dense"])
def test_checks_pass_in_fp32(name):
    impl = registry.get(name)
    assert impl.availability("cpu") is None  # every one of these runs on a CPU
    assert impl.forward is not impl.reference
    err = impl.check(torch.float32, "cpu", "fwd", 32)
    assert err < impl.tolerance(torch.float32)


def test_check_covers_gradients_and_low_precision():
    impl = registry.get("lightning-torch")
    assert impl.check(torch.float32, "cpu", "fwdbwd", 16) < 1e-3
    assert impl.check(torch.bfloat16, "cpu", "fwd", 16) < impl.tolerance(torch.bfloat16)
    assert registry.get("sdpa").check(torch.float32, "cpu", "bwd", 16) < 1e-3
    assert registry.get("toeplitz-dense").check(torch.float32, "cpu", "bwd", 16) < 1e-3


def wrong(impl, factor=1.01, shift=False):
    """The impl with its forward scaled (or its output shifted by one position: a causality bug)."""
    import dataclasses

    def make(heads, device):
        fwd = impl.forward(heads, device)
        if shift:
            return lambda *a: torch.roll(fwd(*a), 1, dims=2)
        return lambda *a: fwd(*a) * factor

    return dataclasses.replace(impl, forward=make)


@pytest.mark.parametrize("name", ["lightning-torch", "linear-naive", "toeplitz-dense", "toeplitz-fft"])
def test_check_detects_a_wrong_kernel(name):
    impl = registry.get(name)
    assert wrong(impl).check(torch.float32, "cpu", "fwd", 16) > 5e-3
    assert wrong(impl, shift=True).check(torch.float32, "cpu", "fwd", 16) > 0.1


def test_linear_naive_check_sees_a_wrong_decay(monkeypatch):
    # the reference is the recurrence, not the naive kernel: slopes off by 10% must fail the check
    import dataclasses

    impl = registry.get("linear-naive")

    def make(heads, device):
        from vsuite_kernels.lightning import lightning_attn

        slopes = registry._slopes(heads, device) * 1.1
        return lambda q, k, v: lightning_attn(q, k, v, slopes, scale=1.0, impl="naive")[0]

    assert dataclasses.replace(impl, forward=make).check(torch.float32, "cpu", "fwd", 16) > 1e-3
