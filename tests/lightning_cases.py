"""Inputs and small tools shared by the Lightning kernel tests (tests/kernels/test_lightning_*.py)."""

from __future__ import annotations

import torch


def lightning_inputs(B, H, N, Dk, Dv, dtype=torch.float32, *, slopes="rand", h0=True, n_states=None, seed=0,
                     device="cpu"):
    """(q, k, v, slopes, initial state, dO, d(final state)), seeded. q, k, v, dO in `dtype`, the rest fp32.

    q, k are scaled by Dk^-1/4 so scores stay O(1). slopes: "rand" (uniform in [0.01, 0.51)), "small" (uniform in
    [0, 0.03), head 0 without decay: gradients carried across whole blocks stay far above the tolerance), "zero"
    (a zero tensor) or None (no slopes argument). Initial and final states are [n_states or B, H, Dk, Dv]."""
    g = torch.Generator().manual_seed(seed)
    S = n_states or B
    q = torch.randn(B, H, N, Dk, generator=g) / Dk**0.25
    k = torch.randn(B, H, N, Dk, generator=g) / Dk**0.25
    v = torch.randn(B, H, N, Dv, generator=g)
    if slopes == "rand":
        s = torch.rand(H, generator=g) * 0.5 + 0.01
    elif slopes == "small":
        s = torch.rand(H, generator=g) * 0.03
        s[0] = 0.0
    elif slopes == "zero":
        s = torch.zeros(H)
    elif slopes is None:
        s = None
    else:
        raise ValueError(f"slopes must be rand, small, zero or None, got {slopes!r}")
    init = torch.randn(S, H, Dk, Dv, generator=g) * 0.3 if h0 else None
    do = torch.randn(B, H, N, Dv, generator=g)
    dht = torch.randn(S, H, Dk, Dv, generator=g)

    def to(t, dt):
        return None if t is None else t.to(device, dt)

    return (to(q, dtype), to(k, dtype), to(v, dtype), to(s, torch.float32), to(init, torch.float32), to(do, dtype),
            to(dht, torch.float32))


def cu_seqlens(lengths, device="cpu") -> torch.Tensor:
    """Sequence lengths -> int32 cumulative offsets [S + 1] (0 first)."""
    return torch.tensor([0, *torch.tensor(lengths, dtype=torch.long).cumsum(0).tolist()], dtype=torch.int32,
                        device=device)


def spy_on(monkeypatch, module, name: str) -> list:
    """Replaces module.name by a wrapper that records each call's last positional argument (then calls the
    original); returns the list of recorded values."""
    calls = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args[-1])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls
