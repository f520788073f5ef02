"""LRPE: TNL's theta init, the relative-position property, decoding offsets, and composition
with every CPU Lightning Attention implementation."""

import math

import pytest
import torch

from vsuite_kernels.lightning import lightning_attn, lightning_attn_step, tnl_layer_slopes
from vsuite_kernels.lrpe import lrpe_cos_sin, lrpe_rotate, lrpe_theta_init
from vsuite_kernels.testing import assert_close


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rotate_theta(H, d, seed=1):
    """Random-ish rotation frequencies [H, 1, d//2], large enough that positions matter."""
    return rand(H, 1, d // 2, seed=seed).abs() + 0.05


def rotate_interleaved(x, theta, offset=0):
    return lrpe_rotate(x, theta, offset, interleaved=True)


VARIANTS = {
    "cos_sin": (lrpe_cos_sin, lambda H, d: lrpe_theta_init(H, d).double()),
    "rotate": (lrpe_rotate, rotate_theta),
    "rotate_interleaved": (rotate_interleaved, rotate_theta),
}


def test_theta_init_hand_values():
    # H=2, head_dim=2: D=4, theta_j = 10000^(-2j/4) = 1, 1e-2, 1e-4, 1e-6, head 0 gets j=0,1.
    theta = lrpe_theta_init(2, 2)
    assert theta.shape == (2, 1, 2) and theta.dtype == torch.float32
    want = torch.tensor([[[1.0, 1e-2]], [[1e-4, 1e-6]]], dtype=torch.float64)
    assert torch.allclose(theta.double(), want, rtol=1e-6, atol=0)
    # larger case: the closed form 10000^(-2j/D) in float64, and TNL's fp32 expression bit-for-bit
    H, hd = 8, 16
    D = H * hd
    j = torch.arange(D, dtype=torch.float64)
    got = lrpe_theta_init(H, hd)
    assert torch.allclose(got.double().flatten(), 10000.0 ** (-2 * j / D), rtol=1e-5, atol=0)
    assert torch.equal(got, (10000 ** (-2 / D * torch.arange(D))).reshape(H, 1, -1))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_scores_depend_only_on_relative_position(variant):
    fn, make_theta = VARIANTS[variant]
    B, H, N, d = 2, 3, 24, 8
    theta = make_theta(H, d)
    # the same q and k vector at every position: scores are constant along each diagonal t - s
    q0, k0 = rand(B, H, 1, d, seed=2), rand(B, H, 1, d, seed=3)
    S = fn(q0.expand(B, H, N, d), theta) @ fn(k0.expand(B, H, N, d), theta).transpose(-1, -2)
    for m in (1, 5):
        assert_close(f"diagonal shift {m}", S[..., :-m, :-m], S[..., m:, m:], ratio=1e-12)
    assert (S[..., 0, 1:] - S[..., 0, :1]).abs().max() > 1e-2  # but positions do matter
    # per-position q, k: moving both sequences by any offset leaves every score unchanged
    q, k = rand(B, H, N, d, seed=4), rand(B, H, N, d, seed=5)
    S0 = fn(q, theta) @ fn(k, theta).transpose(-1, -2)
    for off in (1, 7, 1000):
        S1 = fn(q, theta, offset=off) @ fn(k, theta, offset=off).transpose(-1, -2)
        assert_close(f"offset {off}", S0, S1, ratio=1e-10)
    # closed forms
    s = torch.arange(N, dtype=torch.float64)
    ang = theta[None, :, :, None, :] * (s[:, None] - s[None, :])[..., None]  # [1, H, N(s), N(t), w]
    if variant == "cos_sin":
        want = torch.einsum("bhsj,bhtj,xhstj->bhst", q, k, torch.cos(ang))
    else:
        h = d // 2
        if variant == "rotate":  # pairs (j, j + d/2)
            zq, zk = torch.complex(q[..., :h], q[..., h:]), torch.complex(k[..., :h], k[..., h:])
        else:  # pairs (2j, 2j+1)
            zq, zk = torch.complex(q[..., 0::2], q[..., 1::2]), torch.complex(k[..., 0::2], k[..., 1::2])
        want = torch.einsum("bhsj,bhtj,xhstj->bhst", zq, zk.conj(), torch.exp(1j * ang)).real
    assert_close("closed form", want, S0, ratio=1e-12)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_offset_equals_slicing(variant):
    fn, make_theta = VARIANTS[variant]
    B, H, N, d = 1, 2, 40, 6
    theta = make_theta(H, d).float()
    x = rand(B, H, N, d, seed=6, dtype=torch.float32)
    full = fn(x, theta)
    for a in (0, 1, 17, 39):
        assert_close(f"offset {a}", full[:, :, a:], fn(x[:, :, a:], theta, offset=a), ratio=1e-6)
    # single-token decoding rows
    for t in (0, 5, 39):
        assert_close(f"token {t}", full[:, :, t:t + 1], fn(x[:, :, t:t + 1], theta, offset=t), ratio=1e-6)


def test_shapes_dtypes_and_tnl_computation():
    B, H, N, d = 2, 4, 10, 8
    theta = lrpe_theta_init(H, d)
    x = rand(B, H, N, d, seed=7, dtype=torch.float32)
    out = lrpe_cos_sin(x, theta, offset=3)
    assert out.shape == (B, H, N, 2 * d) and out.dtype == torch.float32
    ang = theta * (torch.arange(N).reshape(1, -1, 1).float() + 3)  # TNL: theta * (index + offset), fp32
    assert torch.equal(out, torch.cat([x * torch.cos(ang), x * torch.sin(ang)], dim=-1))
    assert lrpe_rotate(x, lrpe_theta_init(H, d // 2)).shape == (B, H, N, d)
    for dt in (torch.bfloat16, torch.float16):
        xb = x.to(dt)
        assert lrpe_cos_sin(xb, theta).dtype == dt and lrpe_rotate(xb, theta[..., : d // 2]).dtype == dt
        assert_close(f"cos_sin {dt}", lrpe_cos_sin(xb.float(), theta), lrpe_cos_sin(xb, theta), ratio=1e-2)
    # rotation is norm-preserving per pair; cos/sin preserves the norm of the whole vector
    r = lrpe_rotate(x.double(), rotate_theta(H, d))
    assert_close("rotate norm", x.double().norm(dim=-1), r.norm(dim=-1), ratio=1e-12)
    # the two pairings are the same rotation under the channel permutation (j, j+d/2) <-> (2j, 2j+1)
    perm = torch.arange(d).reshape(2, d // 2).T.flatten()  # [0, d/2, 1, d/2+1, ...]
    ri = lrpe_rotate(x.double()[..., perm], rotate_theta(H, d), interleaved=True)
    assert torch.equal(ri, r[..., perm])
    assert_close("cos_sin norm", x.norm(dim=-1), out.norm(dim=-1), ratio=1e-6)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradients_flow_to_x_and_theta(variant):
    fn, make_theta = VARIANTS[variant]
    x = rand(1, 2, 5, 4, seed=8).requires_grad_()
    theta = make_theta(2, 4).clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, offset=2), (x, theta))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_composes_with_lightning(variant):
    """q, k through LRPE (Dk = 2*head_dim for cos/sin), then every CPU lightning impl agrees."""
    fn, make_theta = VARIANTS[variant]
    B, H, N, hd, Dv = 2, 4, 70, 16, 12
    theta = make_theta(H, hd).float()
    q = rand(B, H, N, hd, seed=9, dtype=torch.float32) / hd**0.5
    k = rand(B, H, N, hd, seed=10, dtype=torch.float32) / hd**0.5
    v = rand(B, H, N, Dv, seed=11, dtype=torch.float32)
    slopes = tnl_layer_slopes(H, 0, 12)  # TNL applies LRPE in layer 0, with the full ALiBi slopes
    q2, k2 = fn(q, theta), fn(k, theta)
    assert q2.shape[-1] == (2 * hd if variant == "cos_sin" else hd)
    ref, ref_state = lightning_attn(q2.double(), k2.double(), v.double(), slopes, impl="naive",
                                    output_final_state=True)
    for impl in ("naive", "chunk", "recurrent"):
        o, state = lightning_attn(q2, k2, v, slopes, impl=impl, output_final_state=True)
        assert_close(f"o {impl}", ref, o, ratio=1e-5)
        assert_close(f"state {impl}", ref_state, state, ratio=1e-5)
    # decoding: prefill P tokens, then one token at a time with offset = its position
    P = 50
    o_pre, state = lightning_attn(fn(q[:, :, :P], theta), fn(k[:, :, :P], theta), v[:, :, :P], slopes,
                                  impl="chunk", output_final_state=True)
    outs = [o_pre]
    for t in range(P, N):
        qt = fn(q[:, :, t:t + 1], theta, offset=t)[:, :, 0]
        kt = fn(k[:, :, t:t + 1], theta, offset=t)[:, :, 0]
        ot, state = lightning_attn_step(qt, kt, v[:, :, t], state, slopes)
        outs.append(ot[:, :, None])
    assert_close("decode", ref, torch.cat(outs, dim=2), ratio=1e-5)


def test_bad_inputs():
    x = torch.randn(1, 2, 5, 6)
    with pytest.raises(ValueError, match="4-D"):
        lrpe_cos_sin(x[0], lrpe_theta_init(2, 6))
    with pytest.raises(ValueError, match="broadcastable"):
        lrpe_cos_sin(x, lrpe_theta_init(3, 6))
    with pytest.raises(ValueError, match="broadcastable"):
        lrpe_rotate(x, lrpe_theta_init(2, 6))  # rotate wants [H, 1, d//2]
    with pytest.raises(ValueError, match="even"):
        lrpe_rotate(torch.randn(1, 2, 5, 5), torch.ones(2, 1, 2))
    with pytest.raises(ValueError, match=">= 1"):
        lrpe_theta_init(0, 4)
    assert math.isclose(lrpe_theta_init(1, 1).item(), 1.0)
