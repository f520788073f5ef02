"""Comparison helpers used by the kernel tests and by `vsuite bench-kernels --check`.

Relative RMS error ||ref - x||_2 / ||ref||_2 is the right yardstick for long reductions in
low precision, where elementwise allclose fails on a few outliers that do not matter.
"""

from __future__ import annotations

import torch


def rel_rms_error(ref: torch.Tensor, x: torch.Tensor) -> float:
    ref64, x64 = ref.detach().double(), x.detach().double()
    denom = ref64.norm().item()
    diff = (ref64 - x64).norm().item()
    return diff / denom if denom > 0 else diff


def assert_close(name: str, ref: torch.Tensor, x: torch.Tensor, ratio: float, atol: float = 1e-6) -> None:
    """Pass if max|ref - x| <= atol, else require no NaN and relative RMS error < ratio."""
    assert ref.shape == x.shape, f"{name}: shape {tuple(x.shape)} != reference {tuple(ref.shape)}"
    assert not torch.isnan(x).any(), f"{name}: NaN in result"
    max_abs = (ref.detach().double() - x.detach().double()).abs().max().item() if ref.numel() else 0.0
    if max_abs <= atol:
        return
    err = rel_rms_error(ref, x)
    assert err < ratio, f"{name}: relative RMS error {err:.3e} >= {ratio:.1e} (max abs diff {max_abs:.3e})"
