"""FFT path for the Toeplitz Neural Operator: a size-2N circulant embedding.

    o = irfft( rfft([x; 0_N]) * rfft(c) )[:N]        along the sequence axis (-2)

T (N x N) is the top-left block of a 2N x 2N circulant C whose first column is c; C times
[x; 0] keeps T x in its first N rows. The first column uses the reference Tno's layout
(fairseq-evo fairseq/modules/tnn/tno.py):

    causal         c = [t_0, t_1, ..., t_{N-1}, t_0]                    (n+1, rfft zero-pads to 2N)
    bidirectional  c = [t_0, t_1, ..., t_{N-1}, t_0, t_{-(N-1)}, ..., t_{-1}]   (2N)

The t_0 at index N is a filler that never reaches the first N outputs (nor gets a
gradient). O(N log N) time, O(N) memory; computes in fp32 (fp64 for fp64 inputs) because
half-precision FFTs lose too much, and casts back to x's dtype.
"""

from __future__ import annotations

import torch

from .naive import check_toeplitz_inputs, compute_dtype


def circulant_column(coeffs: torch.Tensor, causal: bool) -> torch.Tensor:
    """coeffs [H, L, D] -> the reference's first circulant column [H, N+1 | 2N, D]."""
    n = coeffs.shape[1] if causal else (coeffs.shape[1] + 1) // 2
    zero = coeffs[:, :1]
    if causal:
        return torch.cat([coeffs, zero], dim=1)  # t_0..t_{N-1}, t_0
    return torch.cat([coeffs[:, :n], zero, coeffs[:, n:]], dim=1)  # t_0..t_{N-1}, t_0, t_{-(N-1)}..t_{-1}


def toeplitz_fft(x: torch.Tensor, coeffs: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """o = T x through rfft/irfft of size 2N. x [B, H, N, D] -> [B, H, N, D] in x's dtype."""
    check_toeplitz_inputs(x, coeffs, causal)
    N = x.shape[2]
    ct = compute_dtype(x.dtype, coeffs.dtype)
    col = circulant_column(coeffs.to(ct), causal)  # [H, N+1 | 2N, D]
    xf = torch.fft.rfft(x.to(ct), 2 * N, dim=-2)  # [B, H, N+1, D] complex
    cf = torch.fft.rfft(col, 2 * N, dim=-2)  # [H, N+1, D] complex
    o = torch.fft.irfft(xf * cf[None], 2 * N, dim=-2)[:, :, :N]  # [B, H, N, D]
    return o.to(x.dtype)
