"""Lightning Attention: chunked and recurrent paths against the naive reference.

The naive masked-quadratic form in float64 is the oracle; outputs, final states and every
gradient (q, k, v, initial state) are compared by relative RMS error on awkward shapes.
"""

import pytest
import torch

from vsuite_kernels.lightning import (
    alibi_slope_list,
    alibi_slopes,
    lightning_attn,
    lightning_attn_chunk,
    lightning_attn_naive,
    lightning_attn_recurrent,
    lightning_attn_step,
    tnl_layer_slopes,
)
from vsuite_kernels.testing import assert_close

IMPLS = {"chunk": lightning_attn_chunk, "recurrent": lightning_attn_recurrent}


def make_inputs(B, H, N, Dk, Dv, dtype=torch.float32, seed=0, state_rows=None):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, N, Dk, generator=g) / Dk**0.25
    k = torch.randn(B, H, N, Dk, generator=g) / Dk**0.25
    v = torch.randn(B, H, N, Dv, generator=g)
    h0 = torch.randn(state_rows or B, H, Dk, Dv, generator=g) * 0.1
    do = torch.randn(B, H, N, Dv, generator=g)
    dht = torch.randn(state_rows or B, H, Dk, Dv, generator=g)
    return [t.to(dtype) for t in (q, k, v)], h0, do, dht


def run_with_grads(fn, q, k, v, slopes, h0, do, dht, **kw):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    h0 = h0.detach().clone().requires_grad_() if h0 is not None else None
    o, ht = fn(q, k, v, slopes, initial_state=h0, output_final_state=True, **kw)
    loss = (o.float() * do).sum() + (ht * dht).sum()
    loss.backward()
    grads = {"dq": q.grad, "dk": k.grad, "dv": v.grad}
    if h0 is not None:
        grads["dh0"] = h0.grad
    return o, ht, grads


def reference(q, k, v, slopes, h0, do, dht, **kw):
    return run_with_grads(lightning_attn_naive, q.double(), k.double(), v.double(), slopes,
                          None if h0 is None else h0.double(), do.double(), dht.double(), **kw)


SHAPES = [  # (B, H, N, Dk, Dv)
    (1, 2, 1, 16, 16),
    (2, 3, 63, 48, 16),
    (1, 2, 64, 64, 64),
    (2, 2, 130, 96, 48),
    (1, 2, 1000, 128, 64),
]


# The token loop is the decoding path; long sequences are covered by the chunked path.
CASES = [(impl, s) for impl in IMPLS for s in SHAPES if impl == "chunk" or s[2] <= 200]


@pytest.mark.parametrize(("impl", "shape"), CASES, ids=lambda c: c if isinstance(c, str) else "B{}-H{}-N{}-Dk{}-Dv{}".format(*c))
@pytest.mark.parametrize("decay", [True, False], ids=["decay", "nodecay"])
@pytest.mark.parametrize("with_state", [True, False], ids=["h0", "noh0"])
def test_matches_naive(impl, shape, decay, with_state):
    B, H, N, Dk, Dv = shape
    (q, k, v), h0, do, dht = make_inputs(B, H, N, Dk, Dv)
    slopes = alibi_slopes(H) if decay else None
    h0 = h0 if with_state else None
    ref = reference(q, k, v, slopes, h0, do, dht)
    got = run_with_grads(IMPLS[impl], q, k, v, slopes, h0, do, dht)
    assert_close("o", ref[0], got[0], 1e-5)
    assert_close("ht", ref[1], got[1], 1e-5)
    for name in ref[2]:
        assert_close(name, ref[2][name], got[2][name], 1e-5)


@pytest.mark.parametrize("chunk_size", [1, 16, 64, 100])
def test_chunk_size_does_not_matter(chunk_size):
    (q, k, v), h0, do, dht = make_inputs(1, 2, 130, 32, 24)
    ref = lightning_attn_naive(q.double(), k.double(), v.double(), alibi_slopes(2), initial_state=h0.double(),
                               output_final_state=True)
    got = lightning_attn_chunk(q, k, v, alibi_slopes(2), initial_state=h0, output_final_state=True,
                               chunk_size=chunk_size)
    assert_close("o", ref[0], got[0], 1e-5)
    assert_close("ht", ref[1], got[1], 1e-5)


@pytest.mark.parametrize("impl", ["chunk", "recurrent"])
def test_varlen_resets_state_at_boundaries(impl):
    lens = [1, 70, 59]
    cu = torch.tensor([0, 1, 71, 130])
    (q, k, v), h0, do, dht = make_inputs(1, 2, sum(lens), 32, 16, state_rows=3)
    slopes = alibi_slopes(2)
    ref = reference(q, k, v, slopes, h0, do, dht, cu_seqlens=cu)
    got = run_with_grads(IMPLS[impl], q, k, v, slopes, h0, do, dht, cu_seqlens=cu)
    assert_close("o", ref[0], got[0], 1e-5)
    assert_close("ht", ref[1], got[1], 1e-5)
    for name in ref[2]:
        assert_close(name, ref[2][name], got[2][name], 1e-5)
    # Each sequence alone gives the same rows: nothing leaks across a boundary.
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        alone, ht = lightning_attn_naive(q[:, :, a:b].double(), k[:, :, a:b].double(), v[:, :, a:b].double(), slopes,
                                         initial_state=h0[i : i + 1].double(), output_final_state=True)
        assert_close(f"seq{i}", alone, ref[0][:, :, a:b], 1e-12)
        assert_close(f"ht{i}", ht, ref[1][i : i + 1], 1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_accumulate_in_fp32(dtype):
    (q, k, v), h0, do, dht = make_inputs(1, 2, 257, 64, 64, dtype=dtype)
    slopes = alibi_slopes(2)
    ref = lightning_attn_naive(q.double(), k.double(), v.double(), slopes, initial_state=h0.double(),
                               output_final_state=True)
    o, ht = lightning_attn_chunk(q, k, v, slopes, initial_state=h0, output_final_state=True)
    assert o.dtype == dtype and ht.dtype == torch.float32
    assert_close("o", ref[0], o, 1e-2)
    assert_close("ht", ref[1], ht, 1e-4)


def test_chunked_equals_step_by_step_decoding():
    """Prefill with the chunked path, then decode token by token: same as one long run."""
    (q, k, v), _, _, _ = make_inputs(2, 4, 150, 32, 32)
    slopes = tnl_layer_slopes(4, 1, 4)
    full, full_state = lightning_attn_chunk(q, k, v, slopes, output_final_state=True)
    prefix, state = lightning_attn_chunk(q[:, :, :100], k[:, :, :100], v[:, :, :100], slopes, output_final_state=True)
    outs = [prefix]
    for t in range(100, 150):
        o_t, state = lightning_attn_step(q[:, :, t], k[:, :, t], v[:, :, t], state, slopes)
        outs.append(o_t[:, :, None])
    assert_close("o", full, torch.cat(outs, dim=2), 1e-5)
    assert_close("state", full_state, state, 1e-5)


def test_scale_multiplies_output():
    (q, k, v), h0, _, _ = make_inputs(1, 2, 40, 16, 16)
    o1, _ = lightning_attn_chunk(q, k, v, alibi_slopes(2), initial_state=h0)
    o2, _ = lightning_attn_chunk(q, k, v, alibi_slopes(2), initial_state=h0, scale=0.125)
    assert_close("scaled", o1 * 0.125, o2, 1e-6)


def test_hand_computed_two_tokens():
    """N=2, D=1: o_0 = q0 k0 v0; o_1 = e^{-s} q1 k0 v0 + q1 k1 v1."""
    s = 0.7
    q = torch.tensor([2.0, 3.0]).view(1, 1, 2, 1)
    k = torch.tensor([5.0, 7.0]).view(1, 1, 2, 1)
    v = torch.tensor([11.0, 13.0]).view(1, 1, 2, 1)
    expected = torch.tensor([2 * 5 * 11, torch.exp(torch.tensor(-s)).item() * 3 * 5 * 11 + 3 * 7 * 13])
    for fn in (lightning_attn_naive, lightning_attn_chunk, lightning_attn_recurrent):
        o, _ = fn(q, k, v, torch.tensor([s]))
        torch.testing.assert_close(o.view(-1), expected, rtol=1e-6, atol=1e-5)


def test_long_sequence_no_overflow():
    """Strong decay over 5000 tokens: the chunked path never forms exp(+s t)."""
    (q, k, v), _, _, _ = make_inputs(1, 1, 5000, 16, 16)
    o, ht = lightning_attn_chunk(q, k, v, torch.tensor([5.0]), output_final_state=True)
    assert torch.isfinite(o).all() and torch.isfinite(ht).all()
    o_rec, _ = lightning_attn_recurrent(q[:, :, -20:], k[:, :, -20:], v[:, :, -20:], torch.tensor([5.0]))
    assert_close("tail", o_rec[:, :, -1], o[:, :, -1], 1e-5)  # decay e^-5 per step: 20 steps suffice


def test_alibi_slopes_match_official_values():
    assert alibi_slope_list(4) == [0.25, 0.0625, 0.015625, 0.00390625]
    assert alibi_slope_list(8) == [2.0 ** (-i) for i in range(1, 9)]
    got = alibi_slope_list(12)
    assert got[:8] == [2.0 ** (-i) for i in range(1, 9)]
    torch.testing.assert_close(torch.tensor(got[8:]), torch.tensor([0.70711, 0.35355, 0.17678, 0.08839]),
                               atol=1e-5, rtol=0)
    assert len(alibi_slope_list(20)) == 20 and len(alibi_slope_list(1)) == 1


def test_tnl_layer_schedule():
    s = tnl_layer_slopes(8, 0, 24)
    torch.testing.assert_close(s, alibi_slopes(8) * (1 + 1e-5))
    last = tnl_layer_slopes(8, 23, 24)
    torch.testing.assert_close(last, alibi_slopes(8) * 1e-5)
    mid = tnl_layer_slopes(8, 6, 16)
    torch.testing.assert_close(mid, alibi_slopes(8) * (1 - 6 / 15 + 1e-5))
    with pytest.raises(ValueError):
        tnl_layer_slopes(8, 0, 1)


def test_dispatch_and_errors():
    (q, k, v), _, _, _ = make_inputs(1, 2, 10, 16, 8)
    o_auto, _ = lightning_attn(q, k, v, alibi_slopes(2))
    o_naive, _ = lightning_attn(q, k, v, alibi_slopes(2), impl="naive")
    assert_close("auto", o_naive, o_auto, 1e-5)
    with pytest.raises(ValueError, match="unknown Lightning Attention implementation"):
        lightning_attn(q, k, v, impl="nope")
    with pytest.raises(ValueError, match="shape of q"):
        lightning_attn(q, k[:, :, :5], v)
    with pytest.raises(ValueError, match="slopes"):
        lightning_attn(q, k, v, torch.ones(3))
    with pytest.raises(ValueError, match="batch size must be 1"):
        lightning_attn(q.expand(2, -1, -1, -1), k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1),
                       cu_seqlens=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="cu_seqlens must rise"):
        lightning_attn(q, k, v, cu_seqlens=torch.tensor([0, 4, 3, 10]))
    with pytest.raises(ValueError, match="initial_state"):
        lightning_attn(q, k, v, initial_state=torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="outside the supported range"):
        lightning_attn(torch.zeros(1, 1, 2, 300), torch.zeros(1, 1, 2, 300), v[:, :1, :2])


@pytest.mark.parametrize("grad", [True, False], ids=["autograd", "inference"])
def test_chunk_super_blocks(monkeypatch, grad):
    """Many super-blocks (tiny BLOCK_ELEMS), a short last block and a ragged last chunk."""
    from vsuite_kernels.lightning import chunk

    monkeypatch.setattr(chunk, "BLOCK_ELEMS", 2 * 16 * 16 * 16 * 3)  # 3 chunks of 16 per block at B*H=2
    (q, k, v), h0, do, dht = make_inputs(1, 2, 16 * 7 + 5, 16, 8)
    slopes = alibi_slopes(2)
    ref = reference(q, k, v, slopes, h0, do, dht)
    if grad:
        got = run_with_grads(lambda *a, **kw: chunk.lightning_attn_chunk(*a, chunk_size=16, **kw),
                             q, k, v, slopes, h0, do, dht)
        for name in ref[2]:
            assert_close(name, ref[2][name], got[2][name], 1e-5)
    else:
        with torch.no_grad():
            got = chunk.lightning_attn_chunk(q, k, v, slopes, initial_state=h0, output_final_state=True,
                                             chunk_size=16, scale=0.5)
        got = (got[0] * 2, got[1])
    assert_close("o", ref[0], got[0], 1e-5)
    assert_close("ht", ref[1], got[1], 1e-5)


@pytest.mark.parametrize("slopes", [[3.0, 0.01], [0.39, 0.4]], ids=["direct-and-folded", "fold-threshold"])
def test_inference_path_both_score_forms(slopes):
    """Heads with s*C above FOLD_MAX_DECAY use the direct score form, the others the folded one."""
    from vsuite_kernels.lightning import chunk

    (q, k, v), h0, _, _ = make_inputs(1, 2, 200, 32, 24)
    s = torch.tensor(slopes)
    ref = lightning_attn_naive(q.double(), k.double(), v.double(), s, initial_state=h0.double(), output_final_state=True)
    with torch.no_grad():
        got = chunk.lightning_attn_chunk(q, k, v, s, initial_state=h0, output_final_state=True, chunk_size=128)
    assert_close("o", ref[0], got[0], 1e-5)
    assert_close("ht", ref[1], got[1], 1e-5)
