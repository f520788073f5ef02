"""The implementations `vsuite bench-kernels` times, registered by name.

Each `Impl` is built with keywords and carries its own pieces: its op and kind, how to make
inputs, its forward (the timed callable) and its float64 reference (the oracle of the check,
written without vsuite_kernels: a per-token decay recurrence for Lightning Attention, a math
softmax, a lag-by-lag Toeplitz sum), its FLOP and byte counts, how its time and memory grow
with N (and whether it is quadratic), and whether it can run on a device (and why not).

Implementations
    lightning-triton    vsuite_kernels Triton path (CUDA; CPU only under TRITON_INTERPRET=1)
    lightning-torch     vsuite_kernels chunked PyTorch path (the CPU path)
    linear-naive        vsuite_kernels masked quadratic reference, ((Q K^T) * D) V
    sdpa                softmax attention, F.scaled_dot_product_attention(is_causal=True)
    lightning-official  OpenNLPLab `lightning_attn` (lightning_attn_func(q, k, v, s)), if installed
    fla-simple-gla      fla `chunk_simple_gla` on time-major tensors (g_gamma=-s, scale=1), if installed
    toeplitz-fft        vsuite_kernels.toeplitz FFT path, causal
    toeplitz-dense      vsuite_kernels.toeplitz dense oracle, causal

FLOP conventions (the "% of peak FLOP/s" column is achieved FLOP/s over the machine peak
with these counts; B*H times the per-(b,h) count; dense, i.e. masked halves not skipped
unless said otherwise):
    chunked lightning fwd   2*N*C*(Dk+Dv) + 4*N*Dk*Dv, C = the impl's chunk size, capped at N
                            (intra-chunk Q K^T and (S*M) V, inter-chunk Q*KV and the state
                            update K^T V; reference linear-attention.md §6.2).
                            C = 128 for lightning-torch (vsuite_kernels.lightning.chunk.DEFAULT_CHUNK),
                            64 for lightning-triton, lightning-official and fla-simple-gla.
    chunked lightning bwd   lightning-torch (torch autograd through the chunk code): 2 x fwd;
                            Triton-style kernels (lightning-triton, lightning-official,
                            fla-simple-gla): 2*N*C*(3*Dk+2*Dv) + 10*N*Dk*Dv (§6.2).
    linear-naive            fwd 2*N^2*(Dk+Dv) (the full masked N x N matrix is computed);
                            bwd 2 x fwd (dO V^T, S^T dO, dS K, dS^T Q).
    sdpa (causal)           fwd 2*N^2*D (half of 4*N^2*D: the causal half); bwd 2.5 x fwd.
    toeplitz-fft            per channel (b, h, d): two real FFTs and one inverse of length
                            L = 2N at 2.5*L*log2(L) each, plus 6*(N+1) for the complex product;
                            bwd 2 x fwd (dx and dcoeffs are each one such product).
    toeplitz-dense          fwd 2*N^2*D per (b,h) (the full N x N matrix per channel); bwd 2 x fwd.
    fwdbwd                  fwd + bwd.

Byte conventions (the "% of peak bytes/s" column): the minimal traffic, each input read
once and each output written once, in the input dtype; slopes and other O(H) tensors left
out. Attention: fwd reads q, k, v and writes o, B*H*N*(2*Dk+2*Dv) elements; bwd reads q, k,
v, dO and writes dq, dk, dv, B*H*N*(4*Dk+3*Dv); fwdbwd is the sum of both passes. Toeplitz:
fwd reads x [B,H,N,D] and coeffs [H,N,D] and writes o; bwd reads x, coeffs, dO and writes
dx, dcoeffs.

Inputs: q, k ~ N(0, D^-1/2) (so q.k ~ N(0, 1)), v ~ N(0, 1), per-head decays alibi_slopes(H)
(TNL semantics, scale 1.0). Toeplitz: x ~ N(0, 1), coeffs N(0, 1) * 0.99^lag. All inputs are
made on the device from a seeded generator, before any timing or memory measurement.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

OPS = ("lightning_attn", "softmax_attn", "toeplitz")
MODES = ("fwd", "bwd", "fwdbwd")

TRITON_CHUNK = 64  # vsuite_kernels.lightning.triton_fwd.CHUNK; read lazily on CUDA
OFFICIAL_CHUNK = 64  # lightning_attn's BLOCK
FLA_CHUNK = 64  # chunk_simple_gla's default chunk_size

CHECK_SEQ, CHECK_HEADS, CHECK_BATCH, CHECK_MAX_DIM = 257, 2, 1, 64
TOLERANCE = {torch.float32: 1e-3, torch.float16: 3e-2, torch.bfloat16: 3e-2}


@dataclass(frozen=True)
class Case:
    """One benchmark point: shapes, dtype, device and mode."""

    batch: int
    heads: int
    seq: int
    dim: int
    dtype: torch.dtype
    device: torch.device
    mode: str = "fwd"

    def at(self, seq: int) -> "Case":
        return replace(self, seq=seq)

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()


@dataclass
class Workload:
    """A ready-to-time call for one Case: `call()` runs one timed unit (fwd, bwd or fwdbwd).

    Everything the call needs (inputs, the forward graph in bwd mode, dO) is allocated
    when the Workload is built, so a memory measurement around `call` sees only the op's
    working memory.
    """

    call: Callable[[], None]
    keep: list = field(default_factory=list)  # tensors kept alive for the call


# --------------------------------------------------------------------------- FLOP / byte formulas
def lightning_chunk_fwd_flops(n: int, dk: int, dv: int, chunk: int) -> float:
    """Per (b,h): 2*N*C*(Dk+Dv) + 4*N*Dk*Dv with C capped at N."""
    c = min(chunk, n)
    return 2.0 * n * c * (dk + dv) + 4.0 * n * dk * dv


def lightning_kernel_bwd_flops(n: int, dk: int, dv: int, chunk: int) -> float:
    """Per (b,h), Triton-style backward: 2*N*C*(3*Dk+2*Dv) + 10*N*Dk*Dv (reference §6.2)."""
    c = min(chunk, n)
    return 2.0 * n * c * (3 * dk + 2 * dv) + 10.0 * n * dk * dv


def linear_naive_fwd_flops(n: int, dk: int, dv: int) -> float:
    return 2.0 * n * n * (dk + dv)


def sdpa_causal_fwd_flops(n: int, d: int) -> float:
    return 2.0 * n * n * d


def fft_flops(length: int) -> float:
    """2.5 * L * log2(L): the usual count of one real FFT of length L."""
    return 2.5 * length * math.log2(length) if length > 1 else 0.0


def toeplitz_fft_fwd_flops_per_channel(n: int) -> float:
    """Two real FFTs and one inverse of length 2N plus the complex product of N+1 bins."""
    return 3 * fft_flops(2 * n) + 6.0 * (n + 1)


def toeplitz_dense_fwd_flops(n: int, d: int) -> float:
    return 2.0 * n * n * d


def attention_bytes(case: Case, dk: int, dv: int, mode: str) -> float:
    rows = case.batch * case.heads * case.seq
    fwd = rows * (2 * dk + 2 * dv)
    bwd = rows * (4 * dk + 3 * dv)
    return float({"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}[mode] * case.itemsize)


def toeplitz_bytes(case: Case, mode: str) -> float:
    x = case.batch * case.heads * case.seq * case.dim
    c = case.heads * case.seq * case.dim
    fwd = 2 * x + c  # read x, coeffs; write o
    bwd = 3 * x + 2 * c  # read x, coeffs, dO; write dx, dcoeffs
    return float({"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}[mode] * case.itemsize)


def _by_mode(fwd: float, bwd: float, mode: str) -> float:
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}[mode]


# --------------------------------------------------------------------------- inputs
def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _randn(shape, gen, device, dtype=torch.float32, std=1.0) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).mul_(std).to(dtype)


def _slopes(heads: int, device) -> torch.Tensor:
    from vsuite_kernels.lightning import alibi_slopes

    return alibi_slopes(heads, device)


def _attention_inputs(case: Case, gen, time_major=False):
    B, H, N, D = case.batch, case.heads, case.seq, case.dim
    shape = (B, N, H, D) if time_major else (B, H, N, D)
    q = _randn(shape, gen, case.device, case.dtype, D**-0.25)
    k = _randn(shape, gen, case.device, case.dtype, D**-0.25)
    v = _randn(shape, gen, case.device, case.dtype)
    return [q, k, v]


def _toeplitz_inputs(case: Case, gen):
    B, H, N, D = case.batch, case.heads, case.seq, case.dim
    x = _randn((B, H, N, D), gen, case.device, case.dtype)
    lag = torch.arange(N, device=case.device, dtype=torch.float32)
    coeffs = (_randn((H, N, D), gen, case.device) * (0.99**lag)[None, :, None]).to(case.dtype)
    return [x, coeffs]


def make_workload(forward: Callable[..., torch.Tensor], inputs: list[torch.Tensor], mode: str,
                  gen: torch.Generator, extra: list | None = None) -> Workload:
    """The timed unit for a mode.

    fwd: forward under torch.no_grad(). bwd: forward once here (outside any timer), then
    each call zeroes the grads (sets them to None) and runs backward(dO, retain_graph=True).
    fwdbwd: each call zeroes the grads and runs forward + backward.
    """
    extra = list(extra or [])
    if mode == "fwd":
        def call():
            with torch.no_grad():
                forward(*inputs)

        return Workload(call, inputs + extra)
    for t in inputs:
        t.requires_grad_(True)
    out = forward(*inputs)
    dout = torch.randn(out.shape, generator=gen, device=out.device, dtype=torch.float32).to(out.dtype)

    def zero():
        for t in inputs:
            t.grad = None

    if mode == "bwd":
        def call():
            zero()
            out.backward(dout, retain_graph=True)

        return Workload(call, inputs + extra + [out, dout])
    del out

    def call():
        zero()
        forward(*inputs).backward(dout)

    return Workload(call, inputs + extra + [dout])


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True, kw_only=True)
class Impl:
    """One implementation, built with keywords; it carries everything the runner needs.

    `forward(heads, device)` returns the callable that is timed, `reference(heads)` the float64 CPU oracle
    it is checked against (same input layout, computed independently of vsuite_kernels' own paths), and
    `make_inputs(case, generator)` the input tensors of both.
    """

    name: str
    op: str  # one of OPS
    kind: str  # "reference" (an O(N^2) oracle), "torch", "triton" or "external" (another project's kernel)
    summary: str
    complexity: str  # "linear" | "quadratic" | "n log n"
    exponent: float  # time ~ N**exponent, used to extrapolate
    mem_exponent: float  # working memory ~ N**mem_exponent, used to refuse sizes that cannot fit
    available: Callable[[torch.device], str | None]  # None when it runs on the device, else why not
    make_inputs: Callable[[Case, torch.Generator], list[torch.Tensor]]
    forward: Callable[[int, torch.device], Callable[..., torch.Tensor]]  # (heads, device) -> forward(*inputs)
    reference: Callable[[int], Callable[..., torch.Tensor]]  # heads -> float64 CPU oracle, same layout
    reference_name: str  # the oracle in words, for failed-check reasons
    fwd_flops: Callable[[Case], float]
    bwd_flops: Callable[[Case], float]
    bytes_fn: Callable[[Case], float]
    chunk: int | None = None  # the chunk size C of the FLOP count (None: not chunked)
    live_chunk: Callable[[], int] | None = None  # reads C from the kernel itself when it can
    mem_hint: Callable[[Case], float] = lambda case: 0.0  # rough working memory when not measured

    @property
    def quadratic(self) -> bool:
        """Time grows as N^2: sizes far beyond the measured ones are extrapolated, not run."""
        return self.complexity == "quadratic"

    def availability(self, device) -> str | None:
        """None when it can run on `device`, else the reason it cannot."""
        return self.available(torch.device(device))

    def chunk_size(self) -> int | None:
        return self.live_chunk() if self.live_chunk is not None else self.chunk

    def flops(self, case: Case) -> float:
        return _by_mode(self.fwd_flops(case), self.bwd_flops(case) if case.mode != "fwd" else 0.0, case.mode)

    def bytes(self, case: Case) -> float:
        return self.bytes_fn(case)

    def build(self, case: Case, seed: int = 0) -> Workload:
        """The timed unit for `case`: inputs made on the device from a seeded generator, then the mode's call."""
        gen = _generator(case.device, seed)
        forward = self.forward(case.heads, case.device)
        return make_workload(forward, self.make_inputs(case, gen), case.mode, gen)

    def check(self, dtype: torch.dtype, device, mode: str, dim: int, seed: int = 0) -> float:
        """Relative RMS error (max over o and, in bwd modes, the input grads) against the float64 reference,
        at N=CHECK_SEQ, B=CHECK_BATCH, H=CHECK_HEADS, D=min(dim, CHECK_MAX_DIM); the reference sees the
        inputs rounded to `dtype`."""
        from vsuite_kernels.testing import rel_rms_error

        device = torch.device(device)
        case = Case(CHECK_BATCH, CHECK_HEADS, CHECK_SEQ, min(dim, CHECK_MAX_DIM), torch.float64, torch.device("cpu"),
                    mode)
        gen = _generator(torch.device("cpu"), seed)
        inputs64 = [t.to(dtype).double() for t in self.make_inputs(case, gen)]
        reference = self.reference(CHECK_HEADS)
        with torch.no_grad():
            out_shape = reference(*inputs64).shape
        dout64 = torch.randn(out_shape, generator=gen, dtype=torch.float64).to(dtype).double()
        ref = _run_with_grads(reference, inputs64, dout64, mode)
        got = _run_with_grads(self.forward(CHECK_HEADS, device), [t.to(device=device, dtype=dtype) for t in inputs64],
                              dout64.to(device=device, dtype=dtype), mode)
        errors = []
        for r, x in zip(ref, got):
            if x is None or tuple(x.shape) != tuple(r.shape):
                return float("inf")
            x = x.detach().cpu().double()
            errors.append(float("inf") if not torch.isfinite(x).all() else rel_rms_error(r, x))
        return max(errors)

    def tolerance(self, dtype: torch.dtype) -> float:
        return TOLERANCE.get(dtype, 1e-3)


REGISTRY: dict[str, Impl] = {}


def register(impl: Impl) -> Impl:
    REGISTRY[impl.name] = impl
    return impl


def get(name: str) -> Impl:
    return REGISTRY[name]


def names() -> list[str]:
    return list(REGISTRY)


def chunk_size(impl: Impl) -> int | None:
    """The chunk size C an impl's FLOP count uses (None for non-chunked ops)."""
    return impl.chunk_size()


# ----- availability helpers
def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _module_missing(module: str) -> str | None:
    try:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    except (ImportError, ValueError) as err:  # a missing parent package
        return f"{module} is not importable ({type(err).__name__}: {err})"
    return None


def _try_import(module: str) -> str | None:
    missing = _module_missing(module)
    if missing:
        return missing
    try:
        importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - any import failure makes it unavailable
        return f"{module} failed to import ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return None


def _always(device) -> str | None:
    return None


def _triton_available(device: torch.device) -> str | None:
    if device.type != "cuda" and not _interpret():
        return "the Triton kernel needs CUDA (set TRITON_INTERPRET=1 to run it in the interpreter on CPU, slowly)"
    if _module_missing("triton"):
        return "triton is not installed"
    if device.type == "cuda":
        return _try_import("vsuite_kernels.lightning.triton_op")
    return _module_missing("vsuite_kernels.lightning.triton_op")


def _official_available(device: torch.device) -> str | None:
    missing = _module_missing("lightning_attn")
    if missing:
        return "lightning_attn is not installed (pip install lightning-attn)"
    if device.type != "cuda" and not _interpret():
        return "lightning_attn's Triton kernels need CUDA"
    return _try_import("lightning_attn.ops")


def _fla_available(device: torch.device) -> str | None:
    if _module_missing("fla"):
        return "fla is not installed (pip install flash-linear-attention)"
    if device.type != "cuda":
        return "fla's autotuned Triton kernels need CUDA (they fail on CPU, even under TRITON_INTERPRET=1)"
    return _try_import("fla.ops.simple_gla")


def _toeplitz_available(device: torch.device) -> str | None:
    reason = _try_import("vsuite_kernels.toeplitz")
    if reason:
        return reason
    if not hasattr(importlib.import_module("vsuite_kernels.toeplitz"), "toeplitz_matvec"):
        return "vsuite_kernels.toeplitz has no toeplitz_matvec yet"
    return None


# ----- inputs
def attention_inputs(case: Case, gen) -> list[torch.Tensor]:
    """q, k, v [B, H, N, D]."""
    return _attention_inputs(case, gen)


def time_major_inputs(case: Case, gen) -> list[torch.Tensor]:
    """q, k, v [B, N, H, D] (fla's layout)."""
    return _attention_inputs(case, gen, time_major=True)


def toeplitz_inputs(case: Case, gen) -> list[torch.Tensor]:
    """x [B, H, N, D], causal coeffs [H, N, D] (lags 0..N-1)."""
    return _toeplitz_inputs(case, gen)


# ----- forwards (factories: (heads, device) -> forward(*inputs))
def _lightning(kernel_impl: str):
    def make(heads: int, device):
        from vsuite_kernels.lightning import lightning_attn

        slopes = _slopes(heads, device)

        def forward(q, k, v):
            return lightning_attn(q, k, v, slopes, scale=1.0, impl=kernel_impl)[0]

        return forward

    return make


def _official(heads: int, device):
    from lightning_attn.ops import lightning_attn_func

    s = _slopes(heads, device).reshape(-1, 1, 1).contiguous()

    def forward(q, k, v):
        return lightning_attn_func(q, k, v, s)

    return forward


def _fla(heads: int, device):
    from fla.ops.simple_gla import chunk_simple_gla

    g_gamma = (-_slopes(heads, device)).contiguous()

    def forward(q, k, v):  # time-major [B, N, H, D]
        return chunk_simple_gla(q, k, v, g_gamma=g_gamma, scale=1.0)[0]

    return forward


def _sdpa(heads: int, device):
    return lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def _toeplitz(kernel_impl: str):
    def make(heads: int, device):
        from vsuite_kernels.toeplitz import toeplitz_matvec

        return lambda x, coeffs: toeplitz_matvec(x, coeffs, causal=True, impl=kernel_impl)

    return make


# ----- references: float64 on the CPU, written without vsuite_kernels' paths
def decay_recurrence(q, k, v, slopes):
    """Causal linear attention with per-head decay, one token at a time (the recurrent form):
    S_t = exp(-s_h) S_{t-1} + k_t^T v_t,  o_t = q_t S_t.  q, k [B, H, N, Dk], v [B, H, N, Dv] -> o [B, H, N, Dv]."""
    lam = torch.exp(-slopes.to(q.dtype))[None, :, None, None]  # [1, H, 1, 1]
    state = q.new_zeros(q.shape[0], q.shape[1], q.shape[3], v.shape[3])  # [B, H, Dk, Dv]
    outs = []
    for t in range(q.shape[2]):
        state = lam * state + k[:, :, t, :, None] * v[:, :, t, None, :]
        outs.append((q[:, :, t, None, :] @ state)[:, :, 0])  # [B, H, Dv]
    return torch.stack(outs, dim=2)


def _recurrence_reference(heads: int):
    slopes = _slopes(heads, "cpu").double()
    return lambda q, k, v: decay_recurrence(q, k, v, slopes)


def _time_major_recurrence_reference(heads: int):
    slopes = _slopes(heads, "cpu").double()
    return lambda q, k, v: decay_recurrence(*(t.transpose(1, 2) for t in (q, k, v)), slopes).transpose(1, 2)


def softmax_reference(q, k, v):
    """Causal softmax attention written out: softmax(Q K^T / sqrt(D) + causal mask) V."""
    n, d = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    mask = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
    return torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1) @ v


def causal_toeplitz_by_lags(x, coeffs):
    """o[b, h, i, d] = sum_{l=0}^{i} coeffs[h, l, d] x[b, h, i - l, d], accumulated one lag at a time.
    x [B, H, N, D], coeffs [H, N, D] -> o [B, H, N, D]."""
    n = x.shape[2]
    out = torch.zeros_like(x)
    for lag in range(n):
        out = out + torch.nn.functional.pad(coeffs[None, :, lag, None, :] * x[:, :, : n - lag], (0, 0, lag, 0))
    return out


def _run_with_grads(forward, inputs, dout, mode):
    """Output and (bwd modes) the grads of the inputs for a dO."""
    if mode == "fwd":
        with torch.no_grad():
            return [forward(*inputs)]
    inputs = [t.detach().requires_grad_(True) for t in inputs]
    out = forward(*inputs)
    out.backward(dout.to(out.dtype))
    return [out.detach()] + [t.grad for t in inputs]


# ----- counts per impl
def _lightning_fwd(chunk_of: Callable[[], int]):
    return lambda c: c.batch * c.heads * lightning_chunk_fwd_flops(c.seq, c.dim, c.dim, chunk_of())


def _triton_chunk() -> int:
    """The Triton path's chunk size; read from the kernel only when it is already imported."""
    import sys

    mod = sys.modules.get("vsuite_kernels.lightning.triton_fwd")
    return int(getattr(mod, "CHUNK", TRITON_CHUNK)) if mod else TRITON_CHUNK


def _torch_chunk() -> int:
    from vsuite_kernels.lightning.chunk import DEFAULT_CHUNK

    return int(DEFAULT_CHUNK)


def _kernel_bwd(chunk_of: Callable[[], int]):
    return lambda c: c.batch * c.heads * lightning_kernel_bwd_flops(c.seq, c.dim, c.dim, chunk_of())


def _attn_bytes(c: Case) -> float:
    return attention_bytes(c, c.dim, c.dim, c.mode)


def _elems(c: Case, n: float) -> float:
    return n * c.itemsize


RECURRENCE = "the float64 per-token decay recurrence"
LIGHTNING = dict(op="lightning_attn", make_inputs=attention_inputs, reference=_recurrence_reference,
                 reference_name=RECURRENCE, bytes_fn=_attn_bytes)
TOEPLITZ = dict(op="toeplitz", make_inputs=toeplitz_inputs, reference=lambda heads: causal_toeplitz_by_lags,
                reference_name="the float64 lag-by-lag Toeplitz sum", available=_toeplitz_available,
                bytes_fn=lambda c: toeplitz_bytes(c, c.mode))


def _setup() -> None:
    lt_fwd = _lightning_fwd(_torch_chunk)
    register(Impl(
        name="lightning-triton", kind="triton", summary="vsuite_kernels Triton kernel (chunk 64)",
        complexity="linear", exponent=1, mem_exponent=1, chunk=TRITON_CHUNK, live_chunk=_triton_chunk,
        available=_triton_available, forward=_lightning("triton"),
        fwd_flops=_lightning_fwd(_triton_chunk), bwd_flops=_kernel_bwd(_triton_chunk), **LIGHTNING,
    ))
    register(Impl(
        name="lightning-torch", kind="torch", summary="vsuite_kernels chunked PyTorch (chunk 128)",
        complexity="linear", exponent=1, mem_exponent=1, live_chunk=_torch_chunk,
        available=_always, forward=_lightning("chunk"), fwd_flops=lt_fwd, bwd_flops=lambda c: 2 * lt_fwd(c),
        # scores C per token, chunk states Dk*Dv/C per token, fp32, a few live copies
        mem_hint=lambda c: 4.0 * 4 * c.batch * c.heads * c.seq * (_torch_chunk() + 2 * c.dim), **LIGHTNING,
    ))
    register(Impl(
        name="linear-naive", kind="reference", summary="masked quadratic reference ((QK^T)*D)V",
        complexity="quadratic", exponent=2, mem_exponent=2, available=_always, forward=_lightning("naive"),
        fwd_flops=lambda c: c.batch * c.heads * linear_naive_fwd_flops(c.seq, c.dim, c.dim),
        bwd_flops=lambda c: 2 * c.batch * c.heads * linear_naive_fwd_flops(c.seq, c.dim, c.dim),
        mem_hint=lambda c: 4.0 * 4 * (c.batch + 1) * c.heads * c.seq**2, **LIGHTNING,
    ))
    register(Impl(
        name="sdpa", op="softmax_attn", kind="torch",
        summary="softmax attention, F.scaled_dot_product_attention(is_causal=True)",
        complexity="quadratic", exponent=2, mem_exponent=1, available=_always, make_inputs=attention_inputs,
        forward=_sdpa, reference=lambda heads: softmax_reference, reference_name="a float64 math softmax reference",
        fwd_flops=lambda c: c.batch * c.heads * sdpa_causal_fwd_flops(c.seq, c.dim),
        bwd_flops=lambda c: 2.5 * c.batch * c.heads * sdpa_causal_fwd_flops(c.seq, c.dim), bytes_fn=_attn_bytes,
        mem_hint=lambda c: _elems(c, 4 * c.batch * c.heads * c.seq * c.dim),
    ))
    register(Impl(
        name="lightning-official", kind="external", summary="OpenNLPLab lightning_attn_func(q,k,v,s) (chunk 64)",
        complexity="linear", exponent=1, mem_exponent=1, chunk=OFFICIAL_CHUNK, available=_official_available,
        forward=_official, fwd_flops=_lightning_fwd(lambda: OFFICIAL_CHUNK),
        bwd_flops=_kernel_bwd(lambda: OFFICIAL_CHUNK), **LIGHTNING,
    ))
    register(Impl(
        name="fla-simple-gla", kind="external", summary="fla chunk_simple_gla, time-major, g_gamma=-s, scale=1",
        complexity="linear", exponent=1, mem_exponent=1, chunk=FLA_CHUNK, available=_fla_available,
        forward=_fla, fwd_flops=_lightning_fwd(lambda: FLA_CHUNK), bwd_flops=_kernel_bwd(lambda: FLA_CHUNK),
        **{**LIGHTNING, "make_inputs": time_major_inputs, "reference": _time_major_recurrence_reference},
    ))
    fft_fwd = lambda c: c.batch * c.heads * c.dim * toeplitz_fft_fwd_flops_per_channel(c.seq)  # noqa: E731
    register(Impl(
        name="toeplitz-fft", kind="torch", summary="vsuite_kernels Toeplitz matvec via size-2N rfft, causal",
        complexity="n log n", exponent=1, mem_exponent=1, forward=_toeplitz("fft"), fwd_flops=fft_fwd,
        bwd_flops=lambda c: 2 * fft_fwd(c), mem_hint=lambda c: 4.0 * 8 * c.batch * c.heads * 2 * (c.seq + 1) * c.dim,
        **TOEPLITZ,
    ))
    dense_fwd = lambda c: c.batch * c.heads * toeplitz_dense_fwd_flops(c.seq, c.dim)  # noqa: E731
    register(Impl(
        name="toeplitz-dense", kind="reference", summary="vsuite_kernels dense Toeplitz oracle, causal",
        complexity="quadratic", exponent=2, mem_exponent=2, forward=_toeplitz("dense"), fwd_flops=dense_fwd,
        bwd_flops=lambda c: 2 * dense_fwd(c), mem_hint=lambda c: 3.0 * 4 * c.heads * c.seq**2 * c.dim,
        **TOEPLITZ,
    ))


_setup()
