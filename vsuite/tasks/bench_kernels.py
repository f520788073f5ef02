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
     with the impl's own float64 reference on CPU (vsuite.bench.registry): the per-token decay
     recurrence for Lightning Attention, a math softmax for sdpa, a lag-by-lag sum for Toeplitz. A failed check
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
from pathlib import Path

from ..bench.runner import base_record, dtype_name, escape_markup, loadavg, run_checks, Runner, shares_of_peak, speedups
from ..console import Progress, log, warn
from ..devices import resolve_device
from ..errors import DeviceError, UsageError


# --------------------------------------------------------------------------- resolution
def resolve_dtype(spec: str, device):
    """vsuite.devices.resolve_dtype, then a tiny matmul: the dtype must also run on the device with this torch."""
    import torch

    from ..devices import resolve_dtype as resolve

    dtype = resolve(spec, device)
    try:
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
    from rich.table import Table

    from ..bench import registry
    from ..bench.report import print_table

    device = resolve_device("auto")
    table = Table("name", "op", "scaling", "C", "what", f"on {device}", title="bench-kernels implementations",
                  title_justify="left")
    for name in registry.names():
        impl = registry.get(name)
        reason = impl.availability(device)
        c = registry.chunk_size(impl)
        table.add_row(name, impl.op, impl.complexity, str(c) if c else "—", escape_markup(impl.summary),
                      "available" if reason is None else f"[dim]unavailable: {escape_markup(reason)}[/dim]")
    print_table(table)


# --------------------------------------------------------------------------- the run
def run(config, json_path=None, plot_path=None) -> dict:
    """Run the benchmark described by a BenchConfig; print the table, write JSON/plot. Returns the document."""
    from ..bench import registry
    from ..bench.machine import describe, header, reprobe
    from ..bench.measure import retain_freed_memory
    from ..bench.report import build_table, document, output_width, print_table, write_json, write_plot

    names, asked = select_impls(config)
    _check_output_path(json_path, "--json")
    _check_output_path(plot_path, "--plot")
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    retained = retain_freed_memory() if device.type == "cpu" else None
    json_to_stdout = json_path is not None and str(json_path) == "-"

    log(f"bench-kernels: {config.mode} B{config.batch} H{config.heads} D{config.dim} {dtype_name(dtype)} "
        f"on {device}; N = {', '.join(map(str, sorted(set(config.seq))))}; budget {config.budget:g} s")
    machine = describe(device, dtype)
    if retained is not None:
        machine["cpu_allocator"] = ("glibc keeps freed blocks between calls (mallopt), like CUDA's caching allocator"
                                    if retained else "default (mallopt unavailable): calls may pay page faults")
    machine_line = header(machine)
    log(escape_markup(f"  {machine_line}"))
    load = loadavg()
    machine["load_average_start"] = load
    if load is not None and device.type == "cpu" and load > (os.cpu_count() or 1):
        warn(f"the machine is busy (1-minute load average {load:.2f} on {os.cpu_count()} cores): CPU timings will be noisy")

    seqs = sorted(set(config.seq))
    impls = [registry.get(n) for n in names]
    records: dict[tuple[str, int], dict] = {}
    runner = Runner(config, device, dtype, machine)
    unavailable = {}
    for impl in impls:
        reason = impl.availability(device)
        if reason is not None:
            unavailable[impl.name] = reason
            if impl.name in asked:
                warn(escape_markup(f"{impl.name} is not available on {device}: {reason}; listed as skipped"))
        for n in seqs:
            records[(impl.name, n)] = base_record(impl, runner.case0.at(n), config.baseline,
                                                   registry.chunk_size(impl) if reason is None else impl.chunk)
            if reason is not None:
                records[(impl.name, n)].update(skipped=True, reason=f"unavailable: {reason}")
    if config.baseline not in asked and config.impl:
        log(f"  adding the baseline {config.baseline} for the speedup column")

    runnable = [i for i in impls if i.name not in unavailable]
    if config.check and runnable:
        checks = run_checks(runnable, dtype, device, config)
        for name, c in checks.items():
            for n in seqs:
                records[(name, n)].update(check_error=c["error"], check_ok=c["ok"])
                if not c["ok"]:
                    records[(name, n)].update(skipped=True, reason=c["reason"])
        runnable = [i for i in runnable if checks[i.name]["ok"]]

    with Progress("bench-kernels", total=len(runnable) * len(seqs)) as progress:
        for impl in runnable:
            runner.run_impl(impl, seqs, records, progress)

    machine["load_average_end"] = loadavg()
    if runnable and device.type == "cpu":
        reprobe(machine)
    ordered = [records[(impl.name, n)] for impl in impls for n in seqs]
    shares_of_peak(ordered, machine)
    speedups(ordered, config.baseline)
    resolved = config.model_dump(mode="json")
    resolved.update(device=str(device), dtype=dtype_name(dtype), impl=names, seq=seqs,
                    requested={"device": config.device, "dtype": config.dtype, "impl": list(config.impl)})
    doc = document(machine, resolved, ordered)
    doc["probes"] = runner.probes
    print_table(build_table(machine, resolved, ordered, machine_line, width=output_width(json_to_stdout)),
                to_stderr=json_to_stdout)
    if json_path is not None:
        write_json(json_path, doc)
        if not json_to_stdout:
            log(escape_markup(f"wrote {json_path}"))
    if plot_path is not None:
        title = (f"{config.mode}, B{config.batch} H{config.heads} D{config.dim} {dtype_name(dtype)} · "
                 f"{machine.get('gpu_name') or machine.get('cpu_name')}")
        write_plot(plot_path, ordered, title, config.budget)
        log(escape_markup(f"wrote {plot_path}"))
    return doc
