"""Non-causal normalised linear attention: the O(N) path against the quadratic oracle."""

import pytest
import torch
import torch.nn.functional as F

from vsuite_kernels.noncausal import FEATURE_MAPS, linear_attn_noncausal, linear_attn_noncausal_naive
from vsuite_kernels.testing import assert_close


def softplus_map(x):
    return F.softplus(x)


MAPS = list(FEATURE_MAPS) + [softplus_map]


def make_inputs(B, H, N, M, Dk, Dv, feature_map, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, N, Dk, generator=g)
    k = torch.randn(B, H, M, Dk, generator=g)
    v = torch.randn(B, H, M, Dv, generator=g)
    do = torch.randn(B, H, N, Dv, generator=g)
    if feature_map == "identity":  # identity needs non-negative inputs to keep the denominator away from 0
        q, k = q.abs() + 0.1, k.abs() + 0.1
    return q, k, v, do


def run_with_grads(fn, q, k, v, do, **kw):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    o = fn(q, k, v, **kw)
    (o.double() * do.double()).sum().backward()
    return o, q.grad, k.grad, v.grad


SHAPES = [  # (B, H, N, M, Dk, Dv)
    (1, 1, 1, 1, 1, 1),
    (2, 3, 17, 17, 8, 5),
    (1, 2, 289, 289, 64, 64),  # one LVT frame: 17x17 tokens, head dim 64
    (2, 2, 16, 40, 12, 20),  # cross-attention, M != N
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("feature_map", MAPS, ids=lambda m: m if isinstance(m, str) else m.__name__)
def test_linear_matches_naive(shape, feature_map):
    B, H, N, M, Dk, Dv = shape
    q, k, v, do = make_inputs(B, H, N, M, Dk, Dv, feature_map)
    ref = run_with_grads(linear_attn_noncausal_naive, q.double(), k.double(), v.double(), do,
                         feature_map=feature_map)
    got = run_with_grads(linear_attn_noncausal, q, k, v, do, feature_map=feature_map)
    for name, r, g in zip(("o", "dq", "dk", "dv"), ref, got):
        assert g.dtype == torch.float32
        assert_close(f"{name} {feature_map}", r, g, ratio=1e-5)
    # and the two forms agree to round-off in fp64
    assert_close("fp64", ref[0], linear_attn_noncausal(q.double(), k.double(), v.double(), feature_map), 1e-12)


@pytest.mark.parametrize("feature_map", ["relu_offset", "elu1", "identity", softplus_map],
                         ids=["relu_offset", "elu1", "identity", "softplus"])
def test_naive_weights_rows_sum_to_one(feature_map):
    q, k, v, _ = make_inputs(2, 2, 20, 30, 8, 4, feature_map, seed=1)
    q, k, v = q.double(), k.double(), v.double()
    o, w = linear_attn_noncausal_naive(q, k, v, feature_map, eps=0.0, return_weights=True)
    assert w.shape == (2, 2, 20, 30) and (w >= 0).all()
    assert_close("rows", torch.ones(2, 2, 20, dtype=torch.float64), w.sum(-1), ratio=1e-12, atol=1e-12)
    assert_close("o = w v", w @ v, o, ratio=1e-12)
    # with the default eps the rows sum to S / (S + eps), a hair under 1
    _, w_eps = linear_attn_noncausal_naive(q, k, v, feature_map, return_weights=True)
    assert (w_eps.sum(-1) <= 1).all() and (1 - w_eps.sum(-1)).max() < 1e-6


def test_lvt_formula():
    """LVT: phi(x) = ReLU(x) + head_dim^-0.5, out = phi(q) kv * 1 / (phi(q) . k_sum + 1e-6)."""
    B, H, N, e = 2, 2, 33, 16
    q, k, v, _ = make_inputs(B, H, N, N, e, e, "relu_offset", seed=2)
    q_, k_ = F.relu(q) + e**-0.5, F.relu(k) + e**-0.5
    kv = k_.transpose(-1, -2) @ v
    z = 1 / ((q_ * k_.sum(dim=-2, keepdim=True)).sum(-1) + 1e-6)
    want = (q_ @ kv) * z[..., None]
    assert_close("LVT", want, linear_attn_noncausal(q, k, v), ratio=1e-6)
    # eps sits in the denominator: with all-zero ReLU features it alone keeps o finite (= 0)
    zeros = torch.full((1, 1, 4, 3), -1.0)
    o = linear_attn_noncausal(zeros, zeros, torch.ones(1, 1, 4, 2), feature_map="relu")
    assert torch.equal(o, torch.zeros_like(o))


def test_dtypes():
    q, k, v, _ = make_inputs(1, 2, 50, 50, 32, 16, "relu_offset", seed=3)
    ref = linear_attn_noncausal_naive(q.double(), k.double(), v.double())
    for dt in (torch.bfloat16, torch.float16):
        o = linear_attn_noncausal(q.to(dt), k.to(dt), v.to(dt))
        assert o.dtype == dt
        assert_close(f"{dt}", ref, o, ratio=2e-2)


def test_bad_inputs():
    q = torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match="unknown feature map"):
        linear_attn_noncausal(q, q, q, feature_map="softmax")
    with pytest.raises(ValueError, match="4-D"):
        linear_attn_noncausal(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="k must be"):
        linear_attn_noncausal(q, torch.randn(1, 2, 5, 3), q)
    with pytest.raises(ValueError, match="v must be"):
        linear_attn_noncausal(q, q, torch.randn(1, 2, 6, 4))
