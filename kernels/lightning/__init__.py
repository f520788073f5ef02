"""Lightning Attention: causal linear attention with per-head exponential decay.

    o_t = scale * sum_{u<=t} exp(-s_h (t-u)) (q_t . k_u) v_u

One public function, `lightning_attn`, dispatches to an implementation by device:
Triton on CUDA (or anywhere with TRITON_INTERPRET=1 when asked for), chunked PyTorch
elsewhere. All implementations share one signature and one semantics; see inputs.py
for shapes and naive.py for the exact definition including initial/final states.
"""

from __future__ import annotations

import os

from .chunk import lightning_attn_chunk
from .naive import lightning_attn_naive
from .recurrent import lightning_attn_recurrent, lightning_attn_step
from .slopes import alibi_slope_list, alibi_slopes, tnl_layer_slopes

IMPLS = ("naive", "chunk", "recurrent", "triton")


def triton_available(device) -> bool:
    """Triton runs on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1."""
    return getattr(device, "type", str(device)) == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def _pick(impl: str, device) -> str:
    if impl == "auto":
        return "triton" if getattr(device, "type", str(device)) == "cuda" else "chunk"
    if impl not in IMPLS:
        raise ValueError(f"unknown Lightning Attention implementation {impl!r}; choose one of {IMPLS} or 'auto'")
    if impl == "triton" and not triton_available(device):
        raise ValueError("the Triton implementation needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
    return impl


def lightning_attn(q, k, v, slopes=None, *, scale=1.0, initial_state=None, output_final_state=False,
                   cu_seqlens=None, impl="auto"):
    """Causal Lightning Attention.

    Args:
        q, k: [B, H, N, Dk]; v: [B, H, N, Dv] (Dk != Dv allowed, 1..256). fp32/fp16/bf16.
        slopes: [H] per-head decay rates s (lambda = exp(-s)); None for no decay.
            TNL-exact rates come from `tnl_layer_slopes`.
        scale: multiplies the output (TNL uses 1.0, i.e. no 1/sqrt(d)).
        initial_state: [B, H, Dk, Dv] (or [S, H, Dk, Dv] with cu_seqlens), any float dtype.
        output_final_state: also return the fp32 state after the last token.
        cu_seqlens: int [S+1] cumulative lengths for packed sequences (B must be 1);
            the state resets at every boundary.
        impl: "auto" | "naive" | "chunk" | "recurrent" | "triton".
    Returns:
        (o [B, H, N, Dv] in q's dtype, final_state fp32 or None)
    """
    name = _pick(impl, q.device)
    kwargs = dict(scale=scale, initial_state=initial_state, output_final_state=output_final_state,
                  cu_seqlens=cu_seqlens)
    if name == "triton":
        from .triton_op import lightning_attn_triton  # imported lazily: triton is heavy

        return lightning_attn_triton(q, k, v, slopes, **kwargs)
    fn = {"naive": lightning_attn_naive, "chunk": lightning_attn_chunk, "recurrent": lightning_attn_recurrent}[name]
    return fn(q, k, v, slopes, **kwargs)


__all__ = [
    "IMPLS", "alibi_slope_list", "alibi_slopes", "lightning_attn", "lightning_attn_chunk", "lightning_attn_naive",
    "lightning_attn_recurrent", "lightning_attn_step", "tnl_layer_slopes", "triton_available",
]
