"""The measuring half of `vsuite bench-kernels`: checks, the size ladder, estimates, derived numbers.

`Runner.run_impl` walks one implementation's sizes in increasing order: it predicts each
size's time and working memory from the largest size measured so far (or from a probe ladder
N = 256, 1024, ... below the first size, each probe run only while its own prediction stays
under a quarter of the budget), runs the size if the prediction fits the budget and memory,
and otherwise records the estimate with the reason. `run_checks` compares every
implementation with its float64 reference first.

First calls. Each measurement's first call (where a GPU kernel compiles, or fla autotunes
for a minute or more) is announced on stderr before it starts and timed apart: the record's
`first_call_s`, never in the median. On a GPU at least one warmup call always runs, so the
compile never lands in a timed call. The task module (vsuite.tasks.bench_kernels)
resolves the arguments, joins these with the report and prints.
"""

from __future__ import annotations

import os

from ..console import log, warn

PROBE_START = 256  # first probe size
PROBE_BUDGET_FRACTION = 0.25  # a probe runs only while its predicted time stays under budget/4
PROBE_QUICK_S = 1.0  # probes predicted under this get two timed calls, slower ones one
PROBE_MEM_FRACTION = 0.25  # of the available memory, for probes
MEM_FRACTION = 0.6  # of the available memory, for requested sizes
RELIABLE_MEM_SEQ = 1024  # below this, measured peaks are too small to extrapolate on their own
FIRST_CALL_REPORT_S = 1.0  # a first call slower than this gets a line with its time


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def base_record(impl, case, baseline: str, chunk) -> dict:
    return {
        "impl": impl.name, "op": impl.op, "mode": case.mode, "batch": case.batch, "heads": case.heads,
        "seq": case.seq, "dim": case.dim, "dtype": dtype_name(case.dtype), "device": str(case.device),
        "ms": None, "times_ms": None, "flops": impl.flops(case), "bytes": impl.bytes(case),
        "flops_per_s": None, "bytes_per_s": None, "pct_peak_flops": None, "pct_peak_bytes": None,
        "peak_mem_bytes": None, "skipped": False, "reason": None, "estimated_ms": None, "estimated_from": None,
        "estimated_mem_bytes": None, "speedup": None, "speedup_estimated": False, "baseline": baseline,
        "check_error": None, "check_ok": None, "complexity": impl.complexity, "chunk": chunk,
        "first_call_s": None,
    }


class Runner:
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

        if self.device.type == "cuda":
            warmup = max(1, warmup)

        def announce():
            what = ("may compile / autotune; not in the median" if warmup else "timed: no warmup") \
                if self.device.type == "cuda" else ("warmup; not in the median" if warmup else "timed: no warmup")
            log(escape_markup(f"  {impl.name} N={case.seq}: first call ({what}) ..."))
        work = None
        try:
            work = impl.build(case, self.config.seed)
            return measure(work.call, self.device, warmup=warmup, repeats=repeats, limit_s=limit_s,
                           announce=announce)
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
                log(escape_markup(f"  probe {impl.name} N={n} failed: {type(err).__name__}: {_first_line(err)}"))
                break
            series.add(n, t.ms, t.peak_mem_bytes)
            self.probes.setdefault(impl.name, []).append({"seq": n, "ms": t.ms, "peak_mem_bytes": t.peak_mem_bytes,
                                                          "first_call_s": t.first_call_s})
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
            if t.first_call_s is not None and t.first_call_s >= FIRST_CALL_REPORT_S:
                log(f"  {impl.name} N={n}: first call took {t.first_call_s:.3g} s, timed calls {format_ms(t.ms)}")
            sec = t.ms / 1e3
            rec.update(ms=t.ms, times_ms=t.times_ms, peak_mem_bytes=t.peak_mem_bytes, reason=t.note,
                       first_call_s=t.first_call_s,
                       flops_per_s=rec["flops"] / sec if sec > 0 else None,
                       bytes_per_s=rec["bytes"] / sec if sec > 0 else None)
            progress.advance(f"{impl.name} N={n}: {format_ms(t.ms)}")


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def escape_markup(text) -> str:
    """Rich markup escaped: reasons and paths may contain [brackets]."""
    from rich.markup import escape

    return escape(str(text))


def run_checks(impls, dtype, device, config) -> dict[str, dict]:
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
            warn(escape_markup(f"{impl.name}: check raised {type(exc).__name__}: {_first_line(exc)}"))
            continue
        ok = err <= tol
        results[impl.name] = {"error": err, "ok": ok, "tolerance": tol, "reason": None if ok else (
            f"check failed: relative RMS error {err:.2e} > {tol:.0e} against {impl.reference_name} ({where})")}
        if ok:
            log(f"  check {impl.name}: relative RMS error {err:.2e} (tolerance {tol:.0e}) ok")
        else:
            warn(escape_markup(f"{impl.name}: {results[impl.name]['reason']}"))
    return results


def shares_of_peak(records: list[dict], machine: dict) -> None:
    pf, pb = machine.get("peak_flops"), machine.get("peak_bytes_per_s")
    for rec in records:
        if pf and rec["flops_per_s"] is not None:
            rec["pct_peak_flops"] = 100.0 * rec["flops_per_s"] / pf
        if pb and rec["bytes_per_s"] is not None:
            rec["pct_peak_bytes"] = 100.0 * rec["bytes_per_s"] / pb


def speedups(records: list[dict], baseline: str) -> None:
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
