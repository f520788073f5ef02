"""Non-causal normalised linear attention (the video models' token mixer).

    o_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i) . sum_j phi(k_j) + eps)

computed in O(N): the [Dk, Dv] summary sum_j phi(k_j) v_j^T and the [Dk] normaliser
sum_j phi(k_j) are formed once per (batch, head) and read by every query. eps is added to
the denominator, after the dot product, as in LVT (Linear_VideoTransformer
slowfast/models/transformers/linear_block_v2.py, `LinearAttention`, linear_type "relu":
z = 1 / (sum(phi(q) * k_sum, -1) + 1e-6)). The naive oracle forms the explicit weights

    A_ij = phi(q_i) . phi(k_j) / (sum_j' phi(q_i) . phi(k_j') + eps),   o_i = sum_j A_ij v_j.

Feature maps phi (applied to q and k alike, in the compute dtype):
  - "relu_offset": ReLU(x) + Dk^-0.5, LVT's kernel (its offset is `head_dim ** -0.5`,
    0.125 for head_dim 64), strictly positive features;
  - "elu1": 1 + ELU(x) (Katharopoulos et al.);
  - "relu": ReLU(x);
  - "identity": x (for inputs the caller has already made non-negative);
  - or any callable mapping [B, H, N, Dk] -> [B, H, N, Dk'] (the same for q and k).
Keys and values may have their own length M (cross-attention). Computes in fp32 (fp64 for
fp64 inputs) and returns q's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURE_MAPS = ("relu_offset", "elu1", "relu", "identity")


def feature_map_fn(feature_map, head_dim: int):
    """The callable phi for a name in FEATURE_MAPS (or the callable itself)."""
    if callable(feature_map):
        return feature_map
    if feature_map == "relu_offset":
        offset = head_dim**-0.5
        return lambda x: F.relu(x) + offset
    if feature_map == "elu1":
        return lambda x: 1.0 + F.elu(x)
    if feature_map == "relu":
        return F.relu
    if feature_map == "identity":
        return lambda x: x
    raise ValueError(f"unknown feature map {feature_map!r}; choose one of {FEATURE_MAPS} or pass a callable")


def _check(q, k, v):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D head-first tensors [B, H, N, D]")
    B, H, _, Dk = q.shape
    if k.shape[:2] != (B, H) or k.shape[-1] != Dk:
        raise ValueError(f"k must be [B, H, M, Dk] = [{B}, {H}, M, {Dk}], got {tuple(k.shape)}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v must be [B, H, M, Dv] with B, H, M = {tuple(k.shape[:3])}, got {tuple(v.shape)}")
    if not (q.is_floating_point() and k.is_floating_point() and v.is_floating_point()):
        raise ValueError(f"q, k, v must be floating point, got {q.dtype}, {k.dtype}, {v.dtype}")


def _prepare(q, k, v, feature_map):
    _check(q, k, v)
    ct = torch.float64 if torch.float64 in (q.dtype, k.dtype, v.dtype) else torch.float32
    phi = feature_map_fn(feature_map, q.shape[-1])
    fq, fk = phi(q.to(ct)), phi(k.to(ct))  # [B,H,N,Dk'], [B,H,M,Dk']
    if fq.shape[-1] != fk.shape[-1]:
        raise ValueError(f"the feature map gave q and k different widths {fq.shape[-1]} and {fk.shape[-1]}")
    return fq, fk, v.to(ct)


def linear_attn_noncausal(q, k, v, feature_map="relu_offset", eps=1e-6):
    """O(N) non-causal linear attention. q [B,H,N,Dk], k [B,H,M,Dk], v [B,H,M,Dv] -> [B,H,N,Dv]."""
    fq, fk, vc = _prepare(q, k, v, feature_map)
    kv = fk.transpose(-1, -2) @ vc  # [B, H, Dk', Dv]
    k_sum = fk.sum(dim=-2)  # [B, H, Dk']
    den = (fq * k_sum[:, :, None, :]).sum(dim=-1, keepdim=True) + eps  # [B, H, N, 1]
    return ((fq @ kv) / den).to(q.dtype)


def linear_attn_noncausal_naive(q, k, v, feature_map="relu_offset", eps=1e-6, *, return_weights=False):
    """The quadratic oracle with explicit normalised weights A [B,H,N,M] (returned too if asked)."""
    fq, fk, vc = _prepare(q, k, v, feature_map)
    scores = fq @ fk.transpose(-1, -2)  # [B, H, N, M]
    weights = scores / (scores.sum(dim=-1, keepdim=True) + eps)
    o = (weights @ vc).to(q.dtype)
    return (o, weights) if return_weights else o


__all__ = ["FEATURE_MAPS", "linear_attn_noncausal", "linear_attn_noncausal_naive"]
