"""Toeplitz Neural Operator (TNN, ICLR 2023): a per-channel Toeplitz matrix-vector product.

    o[b, h, i, d] = sum_j t_{i-j}[h, d] x[b, h, j, d]        (causal: t_k = 0 for k < 0)

One public function, `toeplitz_matvec`, dispatches to the FFT path (size-2N circulant
embedding, O(N log N), the reference's algorithm) or to the dense oracle. Coefficient
layout (see naive.py), matching the reference Tno so an RPE's output plugs in unchanged:

    causal         coeffs [H, N, D]      lags  0, 1, ..., N-1
    bidirectional  coeffs [H, 2N-1, D]   lags  0, 1, ..., N-1, -(N-1), ..., -1

`toeplitz_positions` gives the matching RPE input and `toeplitz_decay` the lambda^|k|
bias. Gradients flow through both paths by autograd.
"""

from __future__ import annotations

from .fft import toeplitz_fft
from .naive import toeplitz_decay, toeplitz_dense, toeplitz_positions

IMPLS = ("fft", "dense")


def toeplitz_matvec(x, coeffs, causal=True, impl="auto"):
    """Toeplitz matrix-vector product along the sequence axis, one matrix per (head, channel).

    Args:
        x: [B, H, N, D], sequence axis -2. fp32/fp16/bf16/fp64.
        coeffs: causal: [H, N, D], lags 0..N-1; bidirectional: [H, 2N-1, D], lags
            0..N-1 then -(N-1)..-1 (the reference Tno's order without its filler t_0).
        causal: lower-triangular T (output at t sees x at t' <= t only).
        impl: "auto" (= "fft") | "fft" | "dense" (the O(N^2) oracle).
    Returns:
        o [B, H, N, D] in x's dtype (computed in fp32, fp64 for fp64 inputs).
    """
    if impl == "auto":
        impl = "fft"
    if impl not in IMPLS:
        raise ValueError(f"unknown Toeplitz implementation {impl!r}; choose one of {IMPLS} or 'auto'")
    fn = toeplitz_fft if impl == "fft" else toeplitz_dense
    return fn(x, coeffs, causal)


__all__ = ["IMPLS", "toeplitz_decay", "toeplitz_dense", "toeplitz_fft", "toeplitz_matvec", "toeplitz_positions"]
