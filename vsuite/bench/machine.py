"""What the benchmark ran on, and the peaks that "% of peak" is measured against.

CPU peaks are measured here, with the current torch thread count, once before and once after
the benchmark (the higher of the two counts, so one busy moment on a shared machine does not
understate the peak):
  - FLOP/s: the best of 8 fp32 2048x2048 matmuls (2*n^3 FLOP each) after a warmup;
  - bytes/s: the best of 4 copies of a 256 MiB fp32 tensor, counted as read + write
    (2 x 256 MiB per copy, the STREAM "copy" convention).
GPU peaks are the vendor's spec numbers, looked up by device name (H100 SXM / PCIe, H200,
A100): dense tensor-core FLOP/s for fp16/bf16, TF32 for fp32 (Triton's tl.dot uses TF32 for
fp32 inputs by default), and HBM bandwidth. Unknown GPUs get no peak (the % columns stay empty).
The copy bandwidth is measured on either device (`copy_bytes_per_s`, same probe): on a GPU it
says how far the card really gets below its spec (an H200 copies at ~4.3 of its 4.8 TB/s),
the honest bound for bandwidth-bound kernels.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time

import torch

from .measure import meminfo

# name fragment -> (label, {dtype: FLOP/s}, bytes/s). Dense (no 2:4 sparsity) tensor-core peaks.
GPU_SPECS = [
    ("H100 PCIe", "NVIDIA H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12}, 2.0e12),
    ("H100 NVL", "NVIDIA H100 NVL", {"bf16": 835e12, "fp16": 835e12, "tf32": 418e12}, 3.9e12),
    ("H100", "NVIDIA H100 SXM5", {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12}, 3.35e12),
    ("H200", "NVIDIA H200 SXM", {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12}, 4.8e12),
    ("A100-SXM4-40GB", "NVIDIA A100 SXM 40GB", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12}, 1.555e12),
    ("A100-PCIE-40GB", "NVIDIA A100 PCIe 40GB", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12}, 1.555e12),
    ("A100 80GB PCIe", "NVIDIA A100 PCIe 80GB", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12}, 1.935e12),
    ("A100", "NVIDIA A100 SXM 80GB", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12}, 2.039e12),
]
_DTYPE_KEY = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "tf32"}
GPU_COPY_BYTES, GPU_COPY_TRIES = 1 << 30, 10  # ~0.5 ms per copy on an H200


def gpu_spec(name: str, dtype: torch.dtype) -> tuple[str, float, float] | None:
    """(label, peak FLOP/s for dtype, peak bytes/s) for a known GPU name, else None."""
    low = name.lower()
    for fragment, label, flops, bandwidth in GPU_SPECS:
        if fragment.lower() in low:
            return label, flops[_DTYPE_KEY.get(dtype, "tf32")], bandwidth
    return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe_matmul_flops(n: int = 2048, tries: int = 8) -> float:
    """Best fp32 n x n matmul rate in FLOP/s with the current torch thread count."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warmup
    best = float("inf")
    for _ in range(tries):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def probe_copy_bandwidth(nbytes: int = 256 << 20, tries: int = 4, device="cpu") -> float:
    """Best tensor copy rate in bytes/s on `device`, counting read + write."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warmup, faults the pages in
    best = float("inf")
    for _ in range(tries):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        if cuda:
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2.0 * nbytes / best


def describe(device: torch.device, dtype: torch.dtype, probe: bool = True) -> dict:
    """Device, versions and peaks. On CPU the peaks are measured (about a second) when `probe`."""
    device = torch.device(device)
    info = {
        "device": str(device),
        "kind": device.type,
        "cpu_name": cpu_name(),
        "gpu_name": None,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "python": platform.python_version(),
        "memory_bytes": meminfo("MemTotal"),
        "peak_flops": None,
        "peak_bytes_per_s": None,
        "peak_flops_source": None,
        "peak_bytes_source": None,
        "copy_bytes_per_s": None,
        "copy_bytes_source": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu_name"] = props.name
        info["name"] = props.name
        info["gpu_memory_bytes"] = int(props.total_memory)
        info["compute_capability"] = f"{props.major}.{props.minor}"
        spec = gpu_spec(props.name, dtype)
        if spec is None:
            info["peak_flops_source"] = info["peak_bytes_source"] = f"unknown GPU {props.name!r}: no spec table entry"
        else:
            label, flops, bandwidth = spec
            kind = {torch.float32: "TF32 tensor"}.get(dtype, f"{str(dtype).split('.')[-1]} dense tensor")
            info["peak_flops"], info["peak_bytes_per_s"] = flops, bandwidth
            info["peak_flops_source"] = f"{label} spec sheet, {kind} peak"
            info["peak_bytes_source"] = f"{label} spec sheet, HBM bandwidth"
        if probe:
            try:
                info["copy_bytes_per_s"] = probe_copy_bandwidth(GPU_COPY_BYTES, GPU_COPY_TRIES, device)
                info["copy_bytes_source"] = (f"measured: best of {GPU_COPY_TRIES} copies of a "
                                             f"{GPU_COPY_BYTES >> 30} GiB tensor on the GPU (read + write)")
            except RuntimeError as err:  # out of memory on a small or busy card: no measurement
                info["copy_bytes_source"] = f"not measured: {str(err).splitlines()[0][:200]}"
            torch.cuda.empty_cache()
    else:
        info["name"] = info["cpu_name"]
        if probe:
            info["peak_flops"] = probe_matmul_flops()
            info["peak_bytes_per_s"] = probe_copy_bandwidth()
            threads = torch.get_num_threads()
            info["peak_flops_source"] = f"measured: best of 8 fp32 2048x2048 matmuls, {threads} threads"
            info["peak_bytes_source"] = f"measured: best of 4 copies of a 256 MiB tensor (read + write), {threads} threads"
            info["copy_bytes_per_s"] = info["peak_bytes_per_s"]
            info["copy_bytes_source"] = info["peak_bytes_source"]
    return info


def reprobe(info: dict) -> None:
    """Measure the CPU peaks again (after the benchmark) and keep the higher of the two.

    On a shared machine a single probe can land in a busy moment and understate the peak,
    which would inflate every "% of peak"; the best of two probes minutes apart is sturdier.
    """
    if info.get("kind") != "cpu" or info.get("peak_flops") is None:
        return
    flops, bandwidth = probe_matmul_flops(), probe_copy_bandwidth()
    info["peak_flops_probes"] = [info["peak_flops"], flops]
    info["peak_bytes_per_s_probes"] = [info["peak_bytes_per_s"], bandwidth]
    info["peak_flops"] = max(info["peak_flops"], flops)
    info["peak_bytes_per_s"] = max(info["peak_bytes_per_s"], bandwidth)
    info["copy_bytes_per_s"] = info["peak_bytes_per_s"]
    info["peak_flops_source"] += "; the higher of a probe before and one after the benchmark"
    info["peak_bytes_source"] += "; the higher of a probe before and one after the benchmark"


def header(info: dict) -> str:
    """One line naming the device, cores/threads and versions."""
    cuda = info.get("cuda") or "none"
    if info["kind"] == "cuda":
        where = f"{info['gpu_name']} ({info['device']}) · host {info['cpu_name']}"
        if info.get("copy_bytes_per_s"):
            where += f" · copy {info['copy_bytes_per_s'] / 1e12:.3g} TB/s measured"
        cuda_text = f"CUDA {cuda}"
    else:
        where = info["cpu_name"]
        cuda_text = f"CUDA {cuda} (build{'' if info.get('cuda_available') else '; no GPU'})"
    return (f"{where} · {info['cores']} cores / {info['threads']} threads · torch {info['torch']} · "
            f"triton {info['triton'] or 'not installed'} · {cuda_text}")
