"""Toeplitz Neural Operator: FFT path against the dense oracle, layout, decay and causality.

The dense Toeplitz einsum in float64 is the oracle; the fp32 FFT path's outputs and its
gradients w.r.t. x and the (decayed) coefficients are compared by relative RMS error on
awkward lengths, causal and bidirectional.
"""

import pytest
import torch

from vsuite_kernels.testing import assert_close
from vsuite_kernels.toeplitz import (
    toeplitz_decay,
    toeplitz_dense,
    toeplitz_fft,
    toeplitz_matvec,
    toeplitz_positions,
)
from vsuite_kernels.toeplitz.fft import circulant_column


def n_coeffs(N, causal):
    return N if causal else 2 * N - 1


def make_inputs(B, H, N, D, causal, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H, N, D, generator=g)
    coeffs = torch.randn(H, n_coeffs(N, causal), D, generator=g)
    do = torch.randn(B, H, N, D, generator=g)
    return x, coeffs, do


def run_with_grads(fn, x, coeffs, do, causal, gamma):
    x = x.detach().clone().requires_grad_()
    raw = coeffs.detach().clone().requires_grad_()
    c = raw if gamma is None else toeplitz_decay(raw, gamma, causal)
    o = fn(x, c, causal)
    (o.double() * do.double()).sum().backward()
    return o, x.grad, raw.grad


SHAPES = [  # (B, H, N, D)
    (2, 2, 1, 3),
    (1, 3, 2, 1),
    (2, 2, 63, 5),
    (1, 2, 130, 7),
    (1, 1, 1000, 2),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidir"])
@pytest.mark.parametrize("gamma", [None, 0.99, "tensor"], ids=["nodecay", "decay", "decay_per_channel"])
def test_fft_matches_dense(shape, causal, gamma):
    B, H, N, D = shape
    x, coeffs, do = make_inputs(B, H, N, D, causal)
    if gamma == "tensor":  # per-(head, channel) lambda, the reference's gamma shape [H, 1, D]
        gamma = torch.linspace(0.9, 0.999, H * D).reshape(H, 1, D)
    ref = run_with_grads(toeplitz_dense, x.double(), coeffs.double(), do, causal,
                         gamma.double() if torch.is_tensor(gamma) else gamma)
    got = run_with_grads(toeplitz_fft, x, coeffs, do, causal, gamma)
    for name, r, g in zip(("o", "dx", "dcoeffs"), ref, got):
        assert g.dtype == torch.float32
        assert_close(f"{name} N={N} causal={causal}", r, g, ratio=1e-5)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidir"])
def test_fft_fp64_and_dispatch(causal):
    x, coeffs, _ = make_inputs(2, 2, 37, 3, causal, seed=1)
    x, coeffs = x.double(), coeffs.double()
    ref = toeplitz_dense(x, coeffs, causal)
    assert_close("fft fp64", ref, toeplitz_fft(x, coeffs, causal), ratio=1e-12)
    assert_close("auto", ref, toeplitz_matvec(x, coeffs, causal), ratio=1e-12)
    assert torch.equal(toeplitz_matvec(x, coeffs, causal, impl="dense"), ref)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidir"])
def test_half_precision_returns_input_dtype(causal):
    x, coeffs, _ = make_inputs(1, 2, 50, 4, causal, seed=2)
    ref = toeplitz_dense(x.double(), coeffs.double(), causal)
    for dt in (torch.bfloat16, torch.float16):
        o = toeplitz_matvec(x.to(dt), coeffs.to(dt), causal)
        assert o.dtype == dt
        assert_close(f"fft {dt}", ref, o, ratio=2e-2)


def test_dense_hand_example():
    # N=3, one channel: causal T = [[t0,0,0],[t1,t0,0],[t2,t1,t0]]; bidirectional adds t_{-1}, t_{-2} above.
    t0, t1, t2, tm2, tm1 = 1.0, 2.0, 3.0, 4.0, 5.0
    x = torch.tensor([1.0, 10.0, 100.0]).reshape(1, 1, 3, 1)
    causal = torch.tensor([t0, t1, t2]).reshape(1, 3, 1)
    bidir = torch.tensor([t0, t1, t2, tm2, tm1]).reshape(1, 5, 1)
    want_causal = torch.tensor([t0 * 1, t1 * 1 + t0 * 10, t2 * 1 + t1 * 10 + t0 * 100])
    want_bidir = torch.tensor([t0 * 1 + tm1 * 10 + tm2 * 100, t1 * 1 + t0 * 10 + tm1 * 100,
                               t2 * 1 + t1 * 10 + t0 * 100])
    for impl in ("dense", "fft"):
        assert_close(impl, want_causal, toeplitz_matvec(x, causal, True, impl=impl).flatten(), 1e-6, atol=1e-4)
        assert_close(impl, want_bidir, toeplitz_matvec(x, bidir, False, impl=impl).flatten(), 1e-6, atol=1e-4)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidir"])
def test_layout_matches_rpe_of_positions(causal):
    """coeffs = f(toeplitz_positions(n)) must give T[i, j] = f(i - j): the RPE plugs in unchanged."""
    N = 6

    def f(k):  # any injective function of the lag stands in for the RPE
        return torch.sin(0.3 * k) + 0.1 * k + 2.0

    pos = toeplitz_positions(N, causal)
    assert pos.shape == (n_coeffs(N, causal), 1) and pos.dtype == torch.float32
    want = [0, 1, 2, 3, 4, 5] + ([] if causal else [-5, -4, -3, -2, -1])
    assert pos.flatten().tolist() == want
    coeffs = f(pos.double()).reshape(1, -1, 1)  # [H=1, L, D=1]
    eye = torch.eye(N, dtype=torch.float64).reshape(N, 1, N, 1)  # batch of one-hot x: column j of T
    for impl in ("dense", "fft"):
        T = toeplitz_matvec(eye, coeffs, causal, impl=impl)[:, 0, :, 0].T  # [i, j]
        i = torch.arange(N, dtype=torch.float64)
        lag = i[:, None] - i[None, :]
        want_T = f(lag)
        if causal:
            want_T = want_T.masked_fill(lag < 0, 0.0)
        assert_close(f"T {impl}", want_T, T, ratio=1e-12)
    # the FFT's first circulant column is the reference's [t_0, t_1..t_{N-1}, t_0, t_{-(N-1)}..t_{-1}]
    col = circulant_column(coeffs, causal).flatten()
    ref_pos = [0, 1, 2, 3, 4, 5, 0] + ([] if causal else [-5, -4, -3, -2, -1])
    assert torch.equal(col, f(torch.tensor(ref_pos, dtype=torch.float64)))


def test_decay_hand_example():
    causal = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    assert toeplitz_decay(causal, 0.5, True).flatten().tolist() == [1.0, 1.0, 0.75]
    bidir = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 5, 1)  # lags 0, 1, 2, -2, -1
    assert toeplitz_decay(bidir, 0.5, False).flatten().tolist() == [1.0, 1.0, 0.75, 1.0, 2.5]
    # per-(head, channel) gamma [H, 1, D]; lag 0 untouched even for gamma = 0
    c = torch.ones(2, 3, 2)
    g = torch.tensor([[[0.5, 0.0]], [[1.0, 0.25]]])
    out = toeplitz_decay(c, g, True)
    assert out[:, 0].eq(1.0).all()
    assert out[0, :, 0].tolist() == [1.0, 0.5, 0.25] and out[0, :, 1].tolist() == [1.0, 0.0, 0.0]
    assert out[1, :, 0].tolist() == [1.0, 1.0, 1.0] and out[1, :, 1].tolist() == [1.0, 0.25, 0.0625]
    # gamma = 0 leaves only t_0: o = t_0 * x in both directions
    x, coeffs, _ = make_inputs(1, 2, 9, 3, False, seed=3)
    o = toeplitz_matvec(x, toeplitz_decay(coeffs, 0.0, False), causal=False)
    assert_close("gamma=0", coeffs[None, :, :1] * x, o, ratio=1e-6)


def test_decay_matches_reference_formula():
    """pos * gamma**k (k = 1..n-1), neg * flip(gamma**k): bit-for-bit the reference's arithmetic."""
    H, N, D = 2, 7, 3
    coeffs = torch.randn(H, 2 * N - 1, D, generator=torch.Generator().manual_seed(4))
    gamma = torch.ones(H, 1, D) * 0.99
    powers = gamma ** torch.arange(1, N).reshape(1, -1, 1).float()
    want = torch.cat([coeffs[:, :1], coeffs[:, 1:N] * powers, coeffs[:, N:] * powers.flip(1)], dim=1)
    assert torch.equal(toeplitz_decay(coeffs, gamma, False), want)
    assert torch.equal(toeplitz_decay(coeffs[:, :N], 0.99, True), want[:, :N])


@pytest.mark.parametrize("impl", ["dense", "fft"])
def test_causal_output_ignores_future(impl):
    B, H, N, D, t = 1, 2, 40, 3, 17
    x, coeffs, _ = make_inputs(B, H, N, D, True, seed=5)
    x2 = x.clone()
    x2[:, :, t + 1:] += 100.0 * torch.randn(B, H, N - t - 1, D, generator=torch.Generator().manual_seed(6))
    o, o2 = toeplitz_matvec(x, coeffs, True, impl=impl), toeplitz_matvec(x2, coeffs, True, impl=impl)
    assert (o[:, :, : t + 1] - o2[:, :, : t + 1]).abs().max() < 1e-3  # FFT round-off only
    assert (o[:, :, t + 1:] - o2[:, :, t + 1:]).abs().max() > 1.0
    # the bidirectional operator does see the future
    bid = torch.randn(H, 2 * N - 1, D, generator=torch.Generator().manual_seed(7))
    d = toeplitz_matvec(x, bid, False, impl=impl) - toeplitz_matvec(x2, bid, False, impl=impl)
    assert d[:, :, : t + 1].abs().max() > 1.0


def test_bad_inputs():
    x = torch.randn(1, 2, 5, 3)
    with pytest.raises(ValueError, match="4-D"):
        toeplitz_matvec(x[0], torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"\[2, 9, 3\]"):
        toeplitz_matvec(x, torch.randn(2, 5, 3), causal=False)
    with pytest.raises(ValueError, match=r"\[2, 5, 3\]"):
        toeplitz_matvec(x, torch.randn(2, 9, 3), causal=True)
    with pytest.raises(ValueError, match="H, N, D|H, L, D"):
        toeplitz_matvec(x, torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\[2, 5, 3\]"):
        toeplitz_matvec(x, torch.randn(1, 5, 3))
    with pytest.raises(ValueError, match="implementation"):
        toeplitz_matvec(x, torch.randn(2, 5, 3), impl="cuda")
    with pytest.raises(ValueError, match="odd"):
        toeplitz_decay(torch.randn(2, 4, 3), 0.9, causal=False)
    with pytest.raises(ValueError, match="broadcastable"):
        toeplitz_decay(torch.randn(2, 5, 3), torch.ones(2, 5, 3), causal=True)
    with pytest.raises(ValueError, match=">= 1"):
        toeplitz_positions(0, True)
