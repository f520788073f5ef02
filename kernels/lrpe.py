"""LRPE: linearized relative positional encoding for linear attention (Qin et al., TMLR 2023).

q and k both go through the same position-dependent unitary map x_s -> Lambda_s x_s, so
that  q'_s . k'_t = q_s^T Lambda_{t-s} k_t  depends on positions only through t - s, and
the result is still a plain dot product that any linear-attention kernel accepts:

    q2, k2 = lrpe_cos_sin(q, theta), lrpe_cos_sin(k, theta)
    o, _ = vsuite_kernels.lightning.lightning_attn(q2, k2, v, slopes)

Two variants:
  - `lrpe_cos_sin`: TransNormerLLM's (TNL, modeling_transnormer.py `Lrpe`), the complex
    exponential diag(e^{i theta s}) written in reals as concat([x cos(theta s), x sin(theta s)]),
        q'_s . k'_t = sum_j q_j k_j cos(theta_j (s - t)),
    doubling the head dim (d -> 2d); theta [H, 1, d] from `lrpe_theta_init`.
  - `lrpe_rotate`: RoPE-style 2x2 rotations, same dim in and out, theta [H, 1, d//2].
    Pairing is "rotate half" (GPT-NeoX / xopes `lrpe_rotate` convention): channel j is
    paired with channel j + d/2, i.e. z_j = x_j + i x_{j+d/2} is multiplied by e^{i theta_j s}:
        o_j = x_j cos(theta_j s) - x_{j+d/2} sin(theta_j s)
        o_{j+d/2} = x_j sin(theta_j s) + x_{j+d/2} cos(theta_j s)
    so q'_s . k'_t = Re sum_j z^q_j conj(z^k_j) e^{i theta_j (s - t)}.
    `interleaved=True` pairs (2j, 2j+1) instead (original RoPE / Meta LLaMA, and the
    `view_as_complex` form in OpenNLPLab's Llama baselines); the property is the same,
    but a checkpoint trained with one pairing needs the same one.

Positions are s = arange(N) + offset; `offset` is the absolute position of x's first token
(the prompt length plus the tokens decoded so far when decoding). Angles are computed in
fp32 (fp64 for fp64 inputs) as theta * (arange(N) + offset), TNL's order, and the result is
returned in x's dtype. For an fp32 model this is TNL's `Lrpe.forward` bit-for-bit. Two
deliberate differences in half precision: TNL builds the position index in x's dtype
(`arange(n).to(x)`, so bf16 positions above 256 round) and, with an fp32 theta, returns
fp32 by type promotion; here positions are always exact and the output keeps x's dtype
so q', k' and v share one dtype as `lightning_attn` requires.
"""

from __future__ import annotations

import torch


def lrpe_theta_init(num_heads: int, head_dim: int, *, device=None) -> torch.Tensor:
    """TNL's initial theta: 10000^(-2j/D) for j = 0..D-1, D = num_heads*head_dim -> [H, 1, head_dim] fp32.

    Head h gets the contiguous slice j = h*head_dim .. (h+1)*head_dim - 1 (frequencies from 1
    down to 10000^(-2(D-1)/D) ~ 1e-8 overall). TNL makes theta a learnable parameter with
    this value. For `lrpe_rotate` use `lrpe_theta_init(num_heads, head_dim // 2)`, the same
    schedule over the H*d/2 rotation frequencies.
    """
    if num_heads < 1 or head_dim < 1:
        raise ValueError(f"num_heads and head_dim must be >= 1, got {num_heads}, {head_dim}")
    D = num_heads * head_dim
    j = torch.arange(D, dtype=torch.float32, device=device)
    theta = 10000 ** ((-2 / D) * j)  # fp32, as TNL: 10000 ** (-2/D * arange(D))
    return theta.reshape(num_heads, 1, head_dim)


def _check_x(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name}: x must be 4-D [B, H, N, d], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: x must be floating point, got {x.dtype}")


def _angles(x: torch.Tensor, theta: torch.Tensor, width: int, offset, name: str):
    """theta * pos as [H|1, N, width] in the compute dtype, after checking theta's shape."""
    H, N = x.shape[1], x.shape[2]
    theta = torch.as_tensor(theta, device=x.device)
    want = (H, 1, width)
    try:
        ok = torch.broadcast_shapes(theta.shape, want) == want
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: theta must be broadcastable to [H, 1, {width}] = {list(want)}, "
                         f"got {tuple(theta.shape)}")
    ct = torch.float64 if torch.float64 in (x.dtype, theta.dtype) else torch.float32
    pos = torch.arange(N, device=x.device, dtype=ct) + offset  # absolute positions s
    return theta.to(ct) * pos.reshape(1, N, 1), ct  # [H|1, N, width]


def lrpe_cos_sin(x: torch.Tensor, theta: torch.Tensor, offset=0) -> torch.Tensor:
    """TNL's LRPE: x [B, H, N, d] -> concat([x cos(theta s), x sin(theta s)], -1) [B, H, N, 2d].

    theta: [H, 1, d] (TNL's parameter shape; anything broadcastable to it is accepted).
    offset: absolute position of x's first token (int). Returns x's dtype.
    """
    _check_x(x, "lrpe_cos_sin")
    ang, ct = _angles(x, theta, x.shape[-1], offset, "lrpe_cos_sin")
    xc = x.to(ct)
    return torch.cat([xc * torch.cos(ang), xc * torch.sin(ang)], dim=-1).to(x.dtype)


def lrpe_rotate(x: torch.Tensor, theta: torch.Tensor, offset=0, *, interleaved: bool = False) -> torch.Tensor:
    """Rotation LRPE (RoPE): x [B, H, N, d] -> [B, H, N, d], channels j and j + d/2 rotated by theta_j s.

    theta: [H, 1, d//2] (or broadcastable to it, e.g. [1, 1, d//2] for RoPE's shared
    frequencies); d must be even. offset: absolute position of x's first token (int).
    interleaved: pair channels (2j, 2j+1) instead of (j, j + d/2). Returns x's dtype.
    """
    _check_x(x, "lrpe_rotate")
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"lrpe_rotate needs an even head dim, got d={d}")
    ang, ct = _angles(x, theta, d // 2, offset, "lrpe_rotate")
    cos, sin = torch.cos(ang), torch.sin(ang)
    xc = x.to(ct)
    if interleaved:  # pairs (2j, 2j+1)
        x1, x2 = xc[..., 0::2], xc[..., 1::2]
        out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    else:  # pairs (j, j + d/2)
        x1, x2 = xc.chunk(2, dim=-1)
        out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)


__all__ = ["lrpe_cos_sin", "lrpe_rotate", "lrpe_theta_init"]
