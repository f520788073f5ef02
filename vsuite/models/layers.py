"""Small layers shared by several model families (no parameters, so state-dict names never depend on them)."""

from __future__ import annotations

from torch import nn


class DropPath(nn.Module):
    """Stochastic depth per sample (timm semantics: kept paths are scaled by 1 / keep_prob)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):  # x [B, ...]: one keep/drop draw per sample
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep
