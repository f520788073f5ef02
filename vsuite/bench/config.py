"""Typed config of `vsuite bench-kernels` (the [bench] table of a bench-kernels recipe)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DTYPES = ("auto", "float32", "float16", "bfloat16")
MODES = ("fwd", "bwd", "fwdbwd")


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    seq: list[int] = Field(default_factory=lambda: [1024, 4096, 16384, 65536], description="sequence lengths N")
    batch: int = Field(1, ge=1)
    heads: int = Field(8, ge=1)
    dim: int = Field(128, ge=1, le=256, description="head dim (q/k and v)")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    device: str = "auto"  # auto: cuda if available, else cpu
    mode: Literal["fwd", "bwd", "fwdbwd"] = "fwd"
    impl: list[str] = Field(default_factory=list, description="implementations to run; empty = all available")
    baseline: str = "sdpa"  # speedups are measured against this implementation
    budget: float = Field(20.0, gt=0, description="seconds one timed call may take; slower ones are estimated")
    repeats: int = Field(5, ge=1, description="timed calls per measurement (the median is reported)")
    warmup: int = Field(1, ge=0)
    check: bool = True  # compare each implementation with the reference at a small size first
    seed: int = 0

    @field_validator("seq")
    @classmethod
    def _positive_seq(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one sequence length")
        bad = [n for n in v if n < 1]
        if bad:
            raise ValueError(f"sequence lengths must be >= 1, got {bad}")
        return v

    @field_validator("device")
    @classmethod
    def _device_spec(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {v!r}")
        return v

    @field_validator("impl")
    @classmethod
    def _impl_names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not n or not n.strip()]
        if bad:
            raise ValueError("implementation names must be non-empty")
        return v
