"""Timing, peak memory and extrapolation for `vsuite bench-kernels`.

Timing. `measure` runs `warmup` untimed calls, then `repeats` timed calls, and reports the
median. The first warmup call is where a GPU kernel compiles or autotunes (fla's first
fwd+bwd call autotunes for over a minute): `announce` is called right before it (the runner
prints a line, so a long silence has a reason on screen) and its time is kept apart as
`first_call_s`, never in the median. CPU: time.perf_counter around each call. CUDA: torch.cuda.synchronize before and
after each call, perf_counter around it. A call that takes longer than `limit_s` (the
budget) stops the repetitions early (a slow warmup call becomes the measurement), so a
wrong prediction costs one slow call; timed calls also stop once they add up to more than
the budget after three of them.

CPU allocator. glibc returns big freed blocks to the kernel at once (mmap/munmap), so every
call of a kernel with large temporaries would pay first-touch page faults for fresh zeroed
pages, which on a VM can cost more than the arithmetic. `retain_freed_memory` raises glibc's
mmap and trim thresholds (mallopt) so freed blocks stay in the heap between repeats, the way
CUDA's caching allocator keeps them on the GPU: timings are steady-state. No effect where
the C library is not glibc.

Peak memory, the op's working memory: inputs (and in bwd mode the forward graph and dO) are
allocated before the measurement starts, so they are not counted; the output and every
temporary are. CUDA: torch.cuda.reset_peak_memory_stats, then max_memory_allocated minus
memory_allocated before the call. CPU: malloc_trim(0) hands retained free memory back, then
writing "5" to /proc/self/clear_refs resets the peak resident set size (VmHWM) to the
current one; peak = VmHWM after the call minus VmRSS before it. None where /proc is not
writable. The memory is taken on the first call on the CPU (so no timed call pays for the
reset) and on the second call on a GPU (so an autotuner's trial buffers on the first call
are not counted; the first call's peak stands in when it is the only call). No extra call.

Extrapolation. Before a size is run, its time is predicted from the largest size measured so
far: t(N) = t(N0) * (N/N0)^p with the impl's complexity exponent p (2 quadratic, 1 linear
and chunked, 1 for n log n FFTs). Working memory is predicted the same way with the impl's
memory exponent, so sizes that cannot fit are refused before they are tried.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_libc = None


def _glibc():
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.mallopt, lib.malloc_trim  # noqa: B018 - raises AttributeError if not glibc
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def retain_freed_memory() -> bool:
    """Keep freed blocks up to 1 GiB in the heap (glibc). Returns whether it took effect."""
    lib = _glibc()
    if lib is None:
        return False
    ok = lib.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
    ok = lib.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1 and ok
    return ok


def release_freed_memory() -> None:
    """Give retained free heap memory back to the OS (glibc malloc_trim)."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)


# --------------------------------------------------------------------------- memory
def _proc_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


class CpuPeakMemory:
    """Peak resident memory of this process during a call, from /proc (Linux)."""

    def __init__(self):
        self._base = None

    @staticmethod
    def supported() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            status = _proc_status()
            return "VmHWM" in status and "VmRSS" in status
        except OSError:
            return False

    def start(self) -> bool:
        release_freed_memory()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._base = _proc_status()["VmRSS"]
        except (OSError, KeyError):
            self._base = None
        return self._base is not None

    def stop(self) -> int | None:
        if self._base is None:
            return None
        try:
            return max(0, _proc_status()["VmHWM"] - self._base)
        except (OSError, KeyError):
            return None


class CudaPeakMemory:
    def __init__(self, device: torch.device):
        self.device, self._base = device, None

    def start(self) -> bool:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._base = torch.cuda.memory_allocated(self.device)
        return True

    def stop(self) -> int | None:
        torch.cuda.synchronize(self.device)
        return max(0, torch.cuda.max_memory_allocated(self.device) - self._base)


def peak_memory_meter(device: torch.device):
    """A meter with start()/stop() for the device, or None when it cannot measure."""
    if device.type == "cuda":
        return CudaPeakMemory(device)
    if device.type == "cpu" and CpuPeakMemory.supported():
        return CpuPeakMemory()
    return None


def available_memory(device: torch.device) -> int | None:
    """Bytes an op may still allocate: free GPU memory, or MemAvailable on CPU."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except RuntimeError:
            return None
    return meminfo("MemAvailable")


def meminfo(key: str) -> int | None:
    """A /proc/meminfo entry in bytes (Linux), e.g. "MemTotal", or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    ms: float  # median of the timed calls
    times_ms: list[float]
    peak_mem_bytes: int | None
    warmup: int  # untimed calls actually run
    note: str | None = None  # why the repetitions stopped early
    first_call_s: float | None = None  # the first warmup call (compiles / autotunes on a GPU)


def measure(call: Callable[[], None], device: torch.device, *, warmup: int = 1, repeats: int = 5,
            limit_s: float | None = None, memory: bool = True,
            announce: Callable[[], None] | None = None, first_call_compiles: bool | None = None) -> Timing:
    """Median time of `repeats` calls after `warmup` untimed ones, and the peak memory of one call.

    `announce` runs right before the first call. The first warmup call's time is returned as
    `first_call_s` and is never part of the median (it includes compiling and autotuning).
    With `limit_s` (the budget): a warmup call slower than the limit becomes the only
    measurement (no second slow call) -- except the first call where it compiles / autotunes
    (`first_call_compiles`, default: on CUDA): fla's first call autotunes for ~100 s, and taking
    that as the time of a 1 ms kernel made the runner extrapolate hours and skip every size.
    Timed calls stop once one is slower than the limit, or once they add up to more than the
    limit after at least three of them.
    """
    if first_call_compiles is None:
        first_call_compiles = torch.device(device).type == "cuda"
    device = torch.device(device)
    meter = peak_memory_meter(device) if memory else None
    metered_calls = 2 if device.type == "cuda" else 1
    peaks: list[int | None] = []
    n_calls = 0

    def one() -> float:
        nonlocal n_calls
        started = meter.start() if (n_calls < metered_calls and meter is not None) else False
        n_calls += 1
        sync(device)
        t0 = time.perf_counter()
        call()
        sync(device)
        dt = time.perf_counter() - t0
        if started:
            peaks.append(meter.stop())
        return dt

    def peak() -> int | None:
        return peaks[1] if len(peaks) > 1 and peaks[1] is not None else (peaks[0] if peaks else None)

    if announce is not None:
        announce()
    first_s = None
    for i in range(warmup):
        dt = one()
        if i == 0:
            first_s = dt
        if limit_s is not None and dt > limit_s and not (i == 0 and first_call_compiles):
            note = f"one call only: it took {dt:.3g} s > budget {limit_s:.3g} s (timed as the warmup call)"
            return Timing(dt * 1e3, [dt * 1e3], peak(), i + 1, note, first_s)
    times: list[float] = []
    note = None
    repeats = max(1, repeats)
    for i in range(repeats):
        dt = one()
        times.append(dt * 1e3)
        if limit_s is None or len(times) == repeats:
            continue
        if dt > limit_s:
            note = f"stopped after {len(times)} of {repeats} timed calls: {dt:.3g} s > budget {limit_s:.3g} s"
            break
        if sum(times) > limit_s * 1e3 and len(times) >= min(3, repeats):
            note = (f"stopped after {len(times)} of {repeats} timed calls: "
                    f"{sum(times) / 1e3:.3g} s in total > budget {limit_s:.3g} s")
            break
    return Timing(statistics.median(times), times, peak(), warmup, note, first_s)


# --------------------------------------------------------------------------- extrapolation
EXTRAPOLATION = {"quadratic": "quadratic", "linear": "linear", "n log n": "n log n ~ linear"}


def extrapolate(n0: int, value0: float, n: int, exponent: float) -> float:
    """value0 * (n / n0) ** exponent."""
    return value0 * (n / n0) ** exponent


def format_ms(ms: float) -> str:
    """'512 µs', '23.4 ms', '1.25 s', '417 s', '25 min', '16.6 h'."""
    s = ms / 1000
    if s >= 6000:
        h = s / 3600
        return f"{h:.3g} h" if h < 1000 else f"{h:,.0f} h"
    if s >= 1000:
        return f"{s / 60:.3g} min"
    if ms >= 1000:
        return f"{s:.3g} s"
    if ms >= 1:
        return f"{ms:.3g} ms"
    return f"{ms * 1000:.3g} µs"


@dataclass
class Estimate:
    ms: float
    from_seq: int
    from_ms: float
    complexity: str
    mem_bytes: float | None = None

    @property
    def reason(self) -> str:
        kind = EXTRAPOLATION.get(self.complexity, self.complexity)
        return f"estimated from N={self.from_seq} measured at {format_ms(self.from_ms)}, {kind} extrapolation"


@dataclass
class Series:
    """One implementation's measurements in increasing N; predicts larger sizes."""

    exponent: float
    mem_exponent: float
    complexity: str
    points: list[tuple[int, float, int | None]] = field(default_factory=list)  # (N, ms, peak bytes)

    def add(self, seq: int, ms: float, peak_mem_bytes: int | None = None) -> None:
        self.points.append((seq, ms, peak_mem_bytes))

    def largest(self, below: int | None = None) -> tuple[int, float, int | None] | None:
        pts = [p for p in self.points if below is None or p[0] <= below]
        return max(pts, key=lambda p: (p[0], p[1])) if pts else None

    def predict(self, seq: int) -> Estimate | None:
        """Time (and memory where measured) at `seq`, from the largest size measured so far."""
        base = self.largest()
        if base is None:
            return None
        n0, ms0, _ = base
        mem = None
        with_mem = [p for p in self.points if p[2] is not None]
        if with_mem:
            mn, _, mb = max(with_mem, key=lambda p: p[0])
            mem = extrapolate(mn, float(mb), seq, self.mem_exponent) if mn != seq else float(mb)
        return Estimate(extrapolate(n0, ms0, seq, self.exponent), n0, ms0, self.complexity, mem)
