"""`vsuite bench-kernels`: time and check the sequence-mixing kernels.

Joins the implementation registry (vsuite.bench.registry), the timing and memory harness
(vsuite.bench.measure), the machine description and peak probes (vsuite.bench.machine) and
the outputs (vsuite.bench.report).

Procedure:
  1. Resolve and validate: implementation names and the baseline (UsageError), the device
     ("auto" = cuda if available, else cpu; DeviceError if CUDA is asked for and missing) and
     the dtype ("auto" = bf16 on CUDA (fp16 without bf16 support), fp32 on CPU; DeviceError
     if the device cannot compute in it).
  2. Describe the machine; on CPU measure the matmul and copy peaks (again at the end; the
     higher of the two probes counts).
  3. --check: each available implementation runs once at N=257, B1 H2, D=min(dim, 64) in the
     benchmark dtype and is compared (relative RMS error, also the input grads in bwd modes)
     with a float64 reference on CPU: the naive masked form for Lightning Attention, a math
     softmax for sdpa, the dense Toeplitz matrix for the Toeplitz impls. A failed check
     removes the implementation from timing with the reason in its rows.
  4. For each implementation, the sizes in increasing order: predict the time (and working
     memory) from the largest size measured so far, or, before the first size, from a probe
     ladder (N = 256, 1024, 4096, ... below the first size, each probe run only while its own
     prediction stays under a quarter of the budget, so SDPA is measured as far as the budget
     allows before it is extrapolated). A size whose prediction exceeds the budget (or whose
     memory cannot fit) is not run: its row is skipped=true with the estimate and the reason
     "estimated from N=... measured at ..., quadratic extrapolation".
  5. Derived numbers (FLOP/s, bytes/s, % of peak, speedup over the baseline at the same N,
     using the baseline's estimate where it was skipped), then the table (stdout, or stderr
     when the JSON goes to stdout), the JSON document and the plot.

Torch is imported inside the functions so that `vsuite --help` stays fast.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..console import Progress, log, warn
from ..errors import DeviceError, UsageError

PROBE_START = 256  # first probe size
PROBE_BUDGET_FRACTION = 0.25  # a probe runs only while its predicted time stays under budget/4
PROBE_QUICK_S = 1.0  # probes predicted under this get two timed calls, slower ones one
PROBE_MEM_FRACTION = 0.25  # of the available memory, for probes
MEM_FRACTION = 0.6  # of the available memory, for requested sizes
RELIABLE_MEM_SEQ = 1024  # below this, measured peaks are too small to extrapolate on their own

DTYPE_NAMES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


# --------------------------------------------------------------------------- resolution
def resolve_device(spec: str):
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not m:
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if not torch.cuda.is_available():
        raise DeviceError("CUDA is not available on this machine; use --device cpu")
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"cuda:{index} does not exist: this machine has {count} CUDA device(s) "
                          f"(cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def resolve_dtype(spec: str, device):
    import torch

    if spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if spec not in DTYPE_NAMES:
        raise UsageError(f"--dtype must be auto, float32, float16 or bfloat16, got {spec!r}")
    dtype = getattr(torch, spec)
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise DeviceError(f"{torch.cuda.get_device_name(device)} has no bfloat16 support; use --dtype float16 or float32")
    try:  # a tiny matmul in that dtype must work on the device
        a = torch.ones(4, 4, dtype=dtype, device=device)
        (a @ a).sum().item()
    except (RuntimeError, TypeError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DeviceError(f"{spec} does not run on {device} with this torch build ({msg}); "
                          f"use --dtype float32") from None
    return dtype


def select_impls(config) -> tuple[list[str], set[str]]:
    """(names to run in order, names the user asked for). Unknown names are usage errors."""
    from ..bench import registry

    known = registry.names()
    asked = list(dict.fromkeys(config.impl))
    unknown = [n for n in asked if n not in known]
    if unknown:
        raise UsageError(f"unknown implementation {unknown[0]!r} for --impl; known: {', '.join(known)}")
    if config.baseline not in known:
        raise UsageError(f"unknown baseline {config.baseline!r}; known: {', '.join(known)}")
    names = asked or known
    if config.baseline not in names:
        names = names + [config.baseline]
    return names, set(asked)


def _check_output_path(path, flag: str) -> None:
    if path is None or str(path) == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {p} is a directory; give a file name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {p}: cannot write to {parent}")


# --------------------------------------------------------------------------- listing
def list_implementations() -> None:
    """Print the registered implementations and whether they run here."""
    import torch
    from rich.table import Table

    from ..bench import registry
    from ..bench.report import print_table

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    table = Table("name", "op", "scaling", "C", "what", f"on {device}", title="bench-kernels implementations",
                  title_justify="left")
    for name in registry.names():
        impl = registry.get(name)
        reason = impl.availability(device)
        c = registry.chunk_size(impl)
        table.add_row(name, impl.op, impl.complexity, str(c) if c else "—", _esc(impl.summary),
                      "available" if reason is None else f"[dim]unavailable: {_esc(reason)}[/dim]")
    print_table(table)


# --------------------------------------------------------------------------- the run
def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _base_record(impl, case, baseline: str, chunk) -> dict:
    return {
        "impl": impl.name, "op": impl.op, "mode": case.mode, "batch": case.batch, "heads": case.heads,
        "seq": case.seq, "dim": case.dim, "dtype": _dtype_name(case.dtype), "device": str(case.device),
        "ms": None, "times_ms": None, "flops": impl.flops(case), "bytes": impl.bytes(case),
        "flops_per_s": None, "bytes_per_s": None, "pct_peak_flops": None, "pct_peak_bytes": None,
        "peak_mem_bytes": None, "skipped": False, "reason": None, "estimated_ms": None, "estimated_from": None,
        "estimated_mem_bytes": None, "speedup": None, "speedup_estimated": False, "baseline": baseline,
        "check_error": None, "check_ok": None, "complexity": impl.complexity, "chunk": chunk,
    }


class _Runner:
    def __init__(self, config, device, dtype, machine):
        from ..bench.registry import Case

        self.config, self.device, self.dtype, self.machine = config, device, dtype, machine
        self.case0 = Case(config.batch, config.heads, 0, config.dim, dtype, device, config.mode)
        self.budget_ms = config.budget * 1e3
        self.probes: dict[str, list[dict]] = {}

    # ----- memory
    def _available(self):
        from ..bench.measure import available_memory, release_freed_memory

        release_freed_memory()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        return available_memory(self.device)

    def _predicted_mem(self, impl, case, est, series) -> float | None:
        hint = impl.mem_hint(case) or None
        measured = est.mem_bytes if est is not None else None
        with_mem = [p for p in series.points if p[2] is not None]
        if measured is not None and with_mem and max(p[0] for p in with_mem) >= RELIABLE_MEM_SEQ:
            return measured
        vals = [v for v in (measured, hint) if v is not None]
        return max(vals) if vals else None

    # ----- one measurement
    def _measure(self, impl, case, warmup, repeats, limit_s):
        import torch

        from ..bench.measure import measure, release_freed_memory

        work = None
        try:
            work = impl.build(case, self.config.seed)
            return measure(work.call, self.device, warmup=warmup, repeats=repeats, limit_s=limit_s)
        finally:
            del work
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            release_freed_memory()

    def _probe(self, impl, series, target: int) -> None:
        """Measure a few small sizes below `target` so the first prediction has a basis."""
        from ..bench.measure import format_ms

        limit_ms = PROBE_BUDGET_FRACTION * self.budget_ms
        n = PROBE_START
        while n < target:
            case = self.case0.at(n)
            est = series.predict(n)
            if est is not None:
                mem = self._predicted_mem(impl, case, est, series)
                avail = self._available()
                if est.ms > limit_ms or (mem and avail and mem > PROBE_MEM_FRACTION * avail):
                    break
            try:
                repeats = 2 if est is None or est.ms < PROBE_QUICK_S * 1e3 else 1
                t = self._measure(impl, case, 1, repeats, self.config.budget)
            except Exception as err:  # noqa: BLE001 - a failed probe only means no basis
                log(_esc(f"  probe {impl.name} N={n} failed: {type(err).__name__}: {_first_line(err)}"))
                break
            series.add(n, t.ms, t.peak_mem_bytes)
            self.probes.setdefault(impl.name, []).append({"seq": n, "ms": t.ms, "peak_mem_bytes": t.peak_mem_bytes})
            log(f"  probe {impl.name} N={n}: {format_ms(t.ms)}")
            n *= 4

    def run_impl(self, impl, seqs, records, progress) -> None:
        from ..bench.measure import Series, format_ms
        from ..bench.report import fmt_bytes as fmt_bytes_short

        cfg = self.config
        series = Series(impl.exponent, impl.mem_exponent, impl.complexity)
        failed_at = None
        for n in seqs:
            case = self.case0.at(n)
            rec = records[(impl.name, n)]
            if failed_at is not None:
                rec.update(skipped=True, reason=f"not run: failed at N={failed_at}")
                progress.advance(f"{impl.name} N={n}: not run")
                continue
            if not series.points and n > PROBE_START:
                self._probe(impl, series, n)
            est = series.predict(n)
            if est is not None:
                rec["estimated_ms"] = est.ms
                rec["estimated_from"] = {"seq": est.from_seq, "ms": est.from_ms,
                                         "method": f"{est.complexity} extrapolation"}
            mem = self._predicted_mem(impl, case, est, series) if est is not None else None
            rec["estimated_mem_bytes"] = mem
            avail = self._available() if mem else None
            if est is not None and est.ms > self.budget_ms:
                rec.update(skipped=True, reason=f"{est.reason} (over the {cfg.budget:g} s budget)")
                progress.advance(f"{impl.name} N={n}: skipped, ~{format_ms(est.ms)} (est.)")
                continue
            if mem and avail and mem > MEM_FRACTION * avail:
                rec.update(skipped=True, reason=(f"estimated working memory {fmt_bytes_short(mem)} exceeds "
                                                 f"{MEM_FRACTION:.0%} of the {fmt_bytes_short(avail)} available; "
                                                 f"time {est.reason}"))
                progress.advance(f"{impl.name} N={n}: skipped (memory)")
                continue
            try:
                t = self._measure(impl, case, cfg.warmup, cfg.repeats, cfg.budget)
            except Exception as err:  # noqa: BLE001 - report it in the row, go on with the others
                failed_at = n
                rec.update(skipped=True, reason=f"failed: {type(err).__name__}: {_first_line(err)}")
                progress.advance(f"{impl.name} N={n}: failed")
                continue
            series.add(n, t.ms, t.peak_mem_bytes)
            sec = t.ms / 1e3
            rec.update(ms=t.ms, times_ms=t.times_ms, peak_mem_bytes=t.peak_mem_bytes, reason=t.note,
                       flops_per_s=rec["flops"] / sec if sec > 0 else None,
                       bytes_per_s=rec["bytes"] / sec if sec > 0 else None)
            progress.advance(f"{impl.name} N={n}: {format_ms(t.ms)}")


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _esc(text) -> str:
    """Rich markup escaped: reasons and paths may contain [brackets]."""
    from rich.markup import escape

    return escape(str(text))


REFERENCE_NAME = {
    "lightning_attn": "the float64 naive masked reference",
    "softmax_attn": "a float64 math softmax reference",
    "toeplitz": "the float64 dense Toeplitz reference",
}


def _run_checks(impls, dtype, device, config) -> dict[str, dict]:
    from ..bench import registry

    results = {}
    d = min(config.dim, registry.CHECK_MAX_DIM)
    where = f"N={registry.CHECK_SEQ}, B{registry.CHECK_BATCH} H{registry.CHECK_HEADS} D{d}"
    for impl in impls:
        tol = impl.tolerance(dtype)
        try:
            err = impl.check(dtype, device, config.mode, config.dim, config.seed)
        except Exception as exc:  # noqa: BLE001
            results[impl.name] = {"error": None, "ok": False,
                                  "reason": f"check failed: {type(exc).__name__}: {_first_line(exc)}"}
            warn(_esc(f"{impl.name}: check raised {type(exc).__name__}: {_first_line(exc)}"))
            continue
        ok = err <= tol
        results[impl.name] = {"error": err, "ok": ok, "tolerance": tol, "reason": None if ok else (
            f"check failed: relative RMS error {err:.2e} > {tol:.0e} against {REFERENCE_NAME[impl.op]} ({where})")}
        if ok:
            log(f"  check {impl.name}: relative RMS error {err:.2e} (tolerance {tol:.0e}) ok")
        else:
            warn(_esc(f"{impl.name}: {results[impl.name]['reason']}"))
    return results


def _shares_of_peak(records: list[dict], machine: dict) -> None:
    pf, pb = machine.get("peak_flops"), machine.get("peak_bytes_per_s")
    for rec in records:
        if pf and rec["flops_per_s"] is not None:
            rec["pct_peak_flops"] = 100.0 * rec["flops_per_s"] / pf
        if pb and rec["bytes_per_s"] is not None:
            rec["pct_peak_bytes"] = 100.0 * rec["bytes_per_s"] / pb


def _speedups(records: list[dict], baseline: str) -> None:
    base = {}
    for r in records:
        if r["impl"] == baseline:
            t = r["ms"] if r["ms"] is not None else r["estimated_ms"]
            if t is not None:
                base[r["seq"]] = (t, r["ms"] is None)
    for r in records:
        own = r["ms"] if r["ms"] is not None else (r["estimated_ms"] if r["skipped"] else None)
        if own is None or r["seq"] not in base or own <= 0:
            continue
        if r["skipped"] and r["reason"] and not r["reason"].startswith("estimated"):
            continue  # failed / unavailable rows carry no time of their own
        bt, b_est = base[r["seq"]]
        r["speedup"] = bt / own
        r["speedup_estimated"] = b_est or r["ms"] is None


def run(config, json_path=None, plot_path=None) -> dict:
    """Run the benchmark described by a BenchConfig; print the table, write JSON/plot. Returns the document."""
    from ..bench import registry
    from ..bench.machine import describe, header, reprobe
    from ..bench.measure import retain_freed_memory
    from ..bench.report import build_table, document, print_table, write_json, write_plot

    names, asked = select_impls(config)
    _check_output_path(json_path, "--json")
    _check_output_path(plot_path, "--plot")
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    retained = retain_freed_memory() if device.type == "cpu" else None
    json_to_stdout = json_path is not None and str(json_path) == "-"

    log(f"bench-kernels: {config.mode} B{config.batch} H{config.heads} D{config.dim} {_dtype_name(dtype)} "
        f"on {device}; N = {', '.join(map(str, sorted(set(config.seq))))}; budget {config.budget:g} s")
    machine = describe(device, dtype)
    if retained is not None:
        machine["cpu_allocator"] = ("glibc keeps freed blocks between calls (mallopt), like CUDA's caching allocator"
                                    if retained else "default (mallopt unavailable): calls may pay page faults")
    machine_line = header(machine)
    log(_esc(f"  {machine_line}"))
    load = _loadavg()
    machine["load_average_start"] = load
    if load is not None and device.type == "cpu" and load > (os.cpu_count() or 1):
        warn(f"the machine is busy (1-minute load average {load:.2f} on {os.cpu_count()} cores): CPU timings will be noisy")

    seqs = sorted(set(config.seq))
    impls = [registry.get(n) for n in names]
    records: dict[tuple[str, int], dict] = {}
    runner = _Runner(config, device, dtype, machine)
    unavailable = {}
    for impl in impls:
        reason = impl.availability(device)
        if reason is not None:
            unavailable[impl.name] = reason
            if impl.name in asked:
                warn(_esc(f"{impl.name} is not available on {device}: {reason}; listed as skipped"))
        for n in seqs:
            records[(impl.name, n)] = _base_record(impl, runner.case0.at(n), config.baseline,
                                                   registry.chunk_size(impl) if reason is None else impl.chunk)
            if reason is not None:
                records[(impl.name, n)].update(skipped=True, reason=f"unavailable: {reason}")
    if config.baseline not in asked and config.impl:
        log(f"  adding the baseline {config.baseline} for the speedup column")

    runnable = [i for i in impls if i.name not in unavailable]
    if config.check and runnable:
        checks = _run_checks(runnable, dtype, device, config)
        for name, c in checks.items():
            for n in seqs:
                records[(name, n)].update(check_error=c["error"], check_ok=c["ok"])
                if not c["ok"]:
                    records[(name, n)].update(skipped=True, reason=c["reason"])
        runnable = [i for i in runnable if checks[i.name]["ok"]]

    with Progress("bench-kernels", total=len(runnable) * len(seqs)) as progress:
        for impl in runnable:
            runner.run_impl(impl, seqs, records, progress)

    machine["load_average_end"] = _loadavg()
    if runnable and device.type == "cpu":
        reprobe(machine)
    ordered = [records[(impl.name, n)] for impl in impls for n in seqs]
    _shares_of_peak(ordered, machine)
    _speedups(ordered, config.baseline)
    resolved = config.model_dump(mode="json")
    resolved.update(device=str(device), dtype=_dtype_name(dtype), impl=names, seq=seqs,
                    requested={"device": config.device, "dtype": config.dtype, "impl": list(config.impl)})
    doc = document(machine, resolved, ordered)
    doc["probes"] = runner.probes
    print_table(build_table(machine, resolved, ordered, machine_line), to_stderr=json_to_stdout)
    if json_path is not None:
        write_json(json_path, doc)
        if not json_to_stdout:
            log(_esc(f"wrote {json_path}"))
    if plot_path is not None:
        title = (f"{config.mode}, B{config.batch} H{config.heads} D{config.dim} {_dtype_name(dtype)} · "
                 f"{machine.get('gpu_name') or machine.get('cpu_name')}")
        write_plot(plot_path, ordered, title, config.budget)
        log(_esc(f"wrote {plot_path}"))
    return doc
