"""vsuite_kernels: sequence-mixing kernels for efficient sequence models.

Standalone: depends on torch, triton and einops only, never on vsuite. Installed from the
repository folder `kernels/` under the import name `vsuite_kernels` (the bare name `kernels`
belongs to another published package that transformers imports when it finds it).

Ops, each with a naive reference, a chunked/FFT PyTorch path and (where it applies) a
Triton path and a recurrent decoding step:
  - lightning:  causal linear attention with per-head exponential decay (TransNormerLLM)
  - lrpe:       TNL's cos/sin LRPE and the rotation variant
  - toeplitz:   per-channel Toeplitz matrix-vector products through the FFT (TNN's TNO)
  - noncausal:  normalised non-causal linear attention (video models)

Debugging aids for Triton work: VSUITE_KERNELS_POISON=1 NaN-fills every buffer the Lightning
launchers allocate (lightning/buffers.py); `memcheck` catches out-of-bounds loads and stores
under the Triton interpreter.
"""

from .lightning import (
    alibi_slopes,
    lightning_attn,
    lightning_attn_step,
    tnl_layer_slopes,
)
from .lrpe import lrpe_cos_sin, lrpe_rotate, lrpe_theta_init
from .noncausal import linear_attn_noncausal
from .toeplitz import toeplitz_decay, toeplitz_matvec, toeplitz_positions

__version__ = "0.1.0"
__all__ = [
    "alibi_slopes", "lightning_attn", "lightning_attn_step", "linear_attn_noncausal", "lrpe_cos_sin",
    "lrpe_rotate", "lrpe_theta_init", "tnl_layer_slopes", "toeplitz_decay", "toeplitz_matvec", "toeplitz_positions",
]
