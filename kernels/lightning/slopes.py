"""Decay slopes exactly as TransNormerLLM builds them.

`alibi_slopes(H)` reproduces the ALiBi construction used by the official code
(`_build_slope_tensor`): for a power of two H the slopes are 2^(-8i/H), i = 1..H; otherwise
the slopes of the closest lower power of two P, followed by the even-indexed slopes of 2P
for the remaining H - P heads. `tnl_layer_slopes` applies TNL's per-layer schedule
s_{l,h} = alibi_h * (1 - l/(L-1) + 1e-5). The per-step decay is lambda = exp(-s).
"""

from __future__ import annotations

import math

import torch


def _power_of_two_slopes(n: int) -> list[float]:
    # start = 2^(-(2^-(log2 n - 3))) = 2^(-8/n); slope_i = start^i, i = 1..n
    start = 2 ** (-(2 ** -(math.log2(n) - 3)))
    return [start * start**i for i in range(n)]


def alibi_slope_list(n_heads: int) -> list[float]:
    """ALiBi slopes for any head count, as python floats (the official recursion)."""
    if n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")
    if math.log2(n_heads).is_integer():
        return _power_of_two_slopes(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = alibi_slope_list(2 * closest)[0::2][: n_heads - closest]
    return _power_of_two_slopes(closest) + extra


def alibi_slopes(n_heads: int, device=None) -> torch.Tensor:
    """ALiBi slopes as an fp32 tensor of shape [H]."""
    return torch.tensor(alibi_slope_list(n_heads), dtype=torch.float32, device=device)


def tnl_layer_slopes(n_heads: int, layer_idx: int, num_layers: int, device=None) -> torch.Tensor:
    """TransNormerLLM's slope for one layer, fp32 [H]: alibi * (1 - l/(L-1) + 1e-5).

    A one-layer model has no schedule to interpolate (L-1 = 0); like the official code
    would fail there, we refuse instead of dividing by zero.
    """
    if num_layers < 2:
        raise ValueError("TNL's per-layer slope schedule needs num_layers >= 2")
    if not 0 <= layer_idx < num_layers:
        raise ValueError(f"layer_idx {layer_idx} out of range for {num_layers} layers")
    return alibi_slopes(n_heads, device) * (1 - layer_idx / (num_layers - 1) + 1e-5)
