"""Naive reference for the Toeplitz Neural Operator (TNN's TNO): the dense Toeplitz matrix.

    o[b, h, i, d] = sum_j t_{i-j}[h, d] x[b, h, j, d]        (causal: t_k = 0 for k < 0)

Every (head, channel) pair has its own Toeplitz matrix T[i, j] = t_{i-j}. This module also
owns the coefficient layout shared by every path (checks, lag order, decay, RPE positions):

    causal         coeffs [H, N, D]      lags  0, 1, ..., N-1
    bidirectional  coeffs [H, 2N-1, D]   lags  0, 1, ..., N-1, -(N-1), ..., -1

i.e. the lag k lives at index k mod (2N-1): the order in which the reference Tno
(fairseq-evo fairseq/modules/tnn/tno.py, identical in tnn-pytorch) concatenates the RPE
outputs for the zero, positive and negative positions, with the reference's filler t_0
between the positive and negative halves left out (the FFT path re-inserts it). So
`rearrange(rpe(toeplitz_positions(n, causal)), "l (h d) -> h l d", h=H)` is exactly the
reference's coefficient tensor. Building T explicitly costs O(H N^2 D) memory: this is
the oracle, not a production path. Computes in fp32 (fp64 for fp64 inputs).
"""

from __future__ import annotations

import torch


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """fp32, or fp64 when any input is fp64 (test oracles)."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def coeff_len(n: int, causal: bool) -> int:
    """Number of lags stored for a length-n sequence: n (causal) or 2n-1 (bidirectional)."""
    return n if causal else 2 * n - 1


def seq_len_from_coeffs(length: int, causal: bool) -> int:
    """Inverse of `coeff_len`; raises ValueError if `length` is not a valid coefficient count."""
    if length < 1 or (not causal and length % 2 == 0):
        kind = "causal: N" if causal else "bidirectional: 2N-1, an odd number"
        raise ValueError(f"coefficient length {length} is not a valid lag count ({kind})")
    return length if causal else (length + 1) // 2


def check_toeplitz_inputs(x: torch.Tensor, coeffs: torch.Tensor, causal: bool) -> None:
    """x [B, H, N, D]; coeffs [H, N, D] (causal) or [H, 2N-1, D] (bidirectional)."""
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D [B, H, N, D] (sequence axis -2), got shape {tuple(x.shape)}")
    if coeffs.dim() != 3:
        raise ValueError(f"coeffs must be 3-D [H, L, D], got shape {tuple(coeffs.shape)}")
    if not (x.is_floating_point() and coeffs.is_floating_point()):
        raise ValueError(f"x and coeffs must be floating point, got {x.dtype} and {coeffs.dtype}")
    _, H, N, D = x.shape
    if N < 1:
        raise ValueError("x must have at least one position along the sequence axis (-2)")
    want = (H, coeff_len(N, causal), D)
    if tuple(coeffs.shape) != want:
        layout = "lags 0..N-1" if causal else "lags 0..N-1, -(N-1)..-1"
        raise ValueError(
            f"{'causal' if causal else 'bidirectional'} coeffs for x of shape {tuple(x.shape)} must be "
            f"[H, {'N' if causal else '2N-1'}, D] = {list(want)} ({layout}), got {tuple(coeffs.shape)}"
        )


def abs_lags(n: int, causal: bool, device=None) -> torch.Tensor:
    """|k| for every stored lag k, in coefficient order (int64 [L])."""
    pos = torch.arange(n, device=device)
    if causal:
        return pos
    return torch.cat([pos, torch.arange(n - 1, 0, -1, device=device)])


def toeplitz_positions(n: int, causal: bool, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The relative positions of the stored lags, [L, 1] float: the RPE input.

    causal: [0, 1, ..., n-1]; bidirectional: [0, 1, ..., n-1, -(n-1), ..., -1].
    Unnormalised raw lags, as the reference's par_type=1 (its default); feeding them
    through the RPE and reshaping `l (h d) -> h l d` gives `coeffs` for `toeplitz_matvec`.
    """
    if n < 1:
        raise ValueError(f"sequence length must be >= 1, got {n}")
    pos = torch.arange(n, device=device, dtype=dtype)
    if not causal:
        pos = torch.cat([pos, -torch.arange(n - 1, 0, -1, device=device, dtype=dtype)])
    return pos.reshape(-1, 1)  # [L, 1]


def toeplitz_decay(coeffs: torch.Tensor, gamma, causal: bool) -> torch.Tensor:
    """Exponential decay bias: lag k is multiplied by gamma^|k|; lag 0 is left untouched.

    coeffs [H, L, D] in the layout above; gamma a float or a tensor broadcastable to
    [H, 1, D] (the reference's non-trainable `gamma` parameter, filled with lambda, e.g.
    0.99 for the paper LM; a trainable tensor gets gradients). Returns coeffs' dtype.
    Multiplies exactly as the reference does (gamma ** k for k = 1..N-1 on the positive
    lags, the same powers flipped on the negative lags), so a TNN checkpoint's decayed
    coefficients come out bit-for-bit. The reference applies its optional `act_type`
    activation after this step; that stays the caller's business.
    """
    if coeffs.dim() != 3:
        raise ValueError(f"coeffs must be 3-D [H, L, D], got shape {tuple(coeffs.shape)}")
    H, L, D = coeffs.shape
    n = seq_len_from_coeffs(L, causal)
    if not torch.is_tensor(gamma):
        gamma = torch.tensor(float(gamma), dtype=coeffs.dtype, device=coeffs.device)
    elif not gamma.is_floating_point():
        gamma = gamma.to(device=coeffs.device, dtype=coeffs.dtype)
    else:
        gamma = gamma.to(coeffs.device)
    try:
        ok = torch.broadcast_shapes(gamma.shape, (H, 1, D)) == (H, 1, D)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"gamma must be a float or broadcastable to [H, 1, D] = [{H}, 1, {D}], "
                         f"got shape {tuple(gamma.shape)}")
    if gamma.dim() < 3:
        gamma = gamma.reshape((1,) * (3 - gamma.dim()) + tuple(gamma.shape))
    k = abs_lags(n, causal, coeffs.device)[1:].to(coeffs.dtype).reshape(1, -1, 1)  # [1, L-1, 1]
    factor = gamma**k  # [H|1, L-1, D|1]
    return torch.cat([coeffs[:, :1], (coeffs[:, 1:] * factor).to(coeffs.dtype)], dim=1)


def toeplitz_dense(x: torch.Tensor, coeffs: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """o = T x with T[h, i, j, d] = t_{i-j}[h, d], built explicitly. Returns x's dtype."""
    check_toeplitz_inputs(x, coeffs, causal)
    N = x.shape[2]
    ct = compute_dtype(x.dtype, coeffs.dtype)
    i = torch.arange(N, device=x.device)
    lag = i[:, None] - i[None, :]  # [N, N], i - j
    if causal:
        T = coeffs.to(ct)[:, lag.clamp(min=0)]  # [H, N, N, D]
        T = T.masked_fill((lag < 0)[None, :, :, None], 0.0)
    else:
        T = coeffs.to(ct)[:, lag % (2 * N - 1)]  # lag k sits at index k mod (2N-1)
    o = torch.einsum("hnmd,bhmd->bhnd", T, x.to(ct))  # [B, H, N, D]
    return o.to(x.dtype)
