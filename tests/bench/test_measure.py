"""Timing, peak memory and extrapolation."""

from __future__ import annotations

import time

import pytest
import torch

from vsuite.bench import measure
from vsuite.bench.measure import Series, extrapolate, format_ms


def test_extrapolation_math():
    assert extrapolate(1024, 10.0, 4096, 2) == pytest.approx(160.0)
    assert extrapolate(1024, 10.0, 4096, 1) == pytest.approx(40.0)
    assert extrapolate(16384, 2000.0, 65536, 2) == pytest.approx(32000.0)
    assert extrapolate(4096, 5.0, 4096, 2) == 5.0


def test_series_predicts_from_the_largest_measured_size():
    s = Series(exponent=2, mem_exponent=1, complexity="quadratic")
    assert s.predict(1024) is None
    s.add(256, 1.0, 1000)
    s.add(1024, 12.5, 4000)
    est = s.predict(4096)
    assert est.ms == pytest.approx(200.0)
    assert (est.from_seq, est.from_ms) == (1024, 12.5)
    assert est.mem_bytes == pytest.approx(16000)
    assert est.reason == "estimated from N=1024 measured at 12.5 ms, quadratic extrapolation"
    lin = Series(exponent=1, mem_exponent=1, complexity="n log n")
    lin.add(1000, 3.0)
    assert lin.predict(4000).ms == pytest.approx(12.0)
    assert lin.predict(4000).mem_bytes is None
    assert "n log n ~ linear extrapolation" in lin.predict(4000).reason


@pytest.mark.parametrize("ms, text", [(0.5, "500 µs"), (23.4, "23.4 ms"), (1250, "1.25 s"), (417_000, "417 s"),
                                      (1_500_000, "25 min"), (59_800_000, "16.6 h")])
def test_format_ms(ms, text):
    assert format_ms(ms) == text


def test_measure_counts_warmup_and_repeats():
    calls = []
    t = measure.measure(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=3, memory=False)
    assert len(calls) == 5 and len(t.times_ms) == 3 and t.warmup == 2
    assert t.ms == sorted(t.times_ms)[1] and t.note is None


def test_measure_median():
    delays = iter([0.0, 0.03, 0.001, 0.01])
    t = measure.measure(lambda: time.sleep(next(delays)), torch.device("cpu"), warmup=1, repeats=3, memory=False)
    assert 8 <= t.ms <= 25  # the middle one of ~30, ~1, ~10 ms


def test_measure_stops_when_a_call_exceeds_the_limit():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.02)

    t = measure.measure(slow, torch.device("cpu"), warmup=3, repeats=5, limit_s=0.005, memory=False)
    assert len(calls) == 1 and len(t.times_ms) == 1 and "budget" in t.note  # the slow warmup is the measurement
    calls.clear()
    t = measure.measure(slow, torch.device("cpu"), warmup=0, repeats=5, limit_s=0.005, memory=False)
    assert len(calls) == 1 and "stopped after 1 of 5" in t.note


def test_measure_caps_the_total_time_of_a_point():
    calls = []

    def call():
        calls.append(1)
        time.sleep(0.02)

    t = measure.measure(call, torch.device("cpu"), warmup=0, repeats=10, limit_s=0.05, memory=False)
    assert len(calls) == 3 and "in total" in t.note


@pytest.mark.skipif(not measure.CpuPeakMemory.supported(), reason="no writable /proc/self/clear_refs")
def test_cpu_peak_memory_sees_the_working_memory():
    keep = torch.ones(1 << 20)  # allocated before: not counted

    def call():
        x = torch.ones(16 << 20)  # 64 MiB, touched
        del x

    t = measure.measure(call, torch.device("cpu"), warmup=1, repeats=1)
    assert 48 << 20 <= t.peak_mem_bytes <= 200 << 20
    assert keep.numel() == 1 << 20


def test_available_memory_on_cpu():
    avail = measure.available_memory(torch.device("cpu"))
    assert avail is None or avail > 0


def test_gpu_spec_table_by_name():
    from vsuite.bench.machine import gpu_spec

    assert gpu_spec("NVIDIA H100 80GB HBM3", torch.bfloat16)[1:] == (989.4e12, 3.35e12)
    assert gpu_spec("NVIDIA H100 PCIe", torch.float16)[1:] == (756e12, 2.0e12)
    assert gpu_spec("NVIDIA H200", torch.bfloat16)[2] == 4.8e12
    assert gpu_spec("NVIDIA A100-SXM4-80GB", torch.float32)[1] == 156e12  # TF32
    assert gpu_spec("NVIDIA GeForce RTX 4090", torch.bfloat16) is None


def test_describe_cpu_without_probes():
    from vsuite.bench.machine import describe, header

    info = describe(torch.device("cpu"), torch.float32, probe=False)
    assert info["kind"] == "cpu" and info["threads"] == torch.get_num_threads() and info["torch"] == torch.__version__
    assert info["peak_flops"] is None
    line = header(info)
    assert info["cpu_name"] in line and "threads" in line and "torch" in line and "triton" in line and "CUDA" in line


def test_measure_announces_and_separates_the_first_call():
    events = []
    delays = iter([0.2, 0.002, 0.002, 0.002])

    def call():
        events.append("call")
        time.sleep(next(delays))

    t = measure.measure(call, torch.device("cpu"), warmup=1, repeats=3, memory=False,
                        announce=lambda: events.append("announce"))
    assert events == ["announce", "call", "call", "call", "call"]
    assert t.first_call_s >= 0.2 and max(t.times_ms) < 100 and len(t.times_ms) == 3


def test_a_slow_compiling_first_call_never_becomes_the_measurement():
    # fla autotunes for ~100 s on its first GPU call: over the budget, yet not the kernel's time.
    delays = iter([0.3, 0.002, 0.002, 0.002])
    t = measure.measure(lambda: time.sleep(next(delays)), torch.device("cpu"), warmup=1, repeats=3, memory=False,
                        limit_s=0.1, first_call_compiles=True)
    assert t.first_call_s >= 0.3 and len(t.times_ms) == 3 and max(t.times_ms) < 100 and t.note is None
    # Where the first call is an ordinary one (CPU), a warmup over the budget is the measurement.
    delays = iter([0.3, 0.002])
    t = measure.measure(lambda: time.sleep(next(delays)), torch.device("cpu"), warmup=1, repeats=3, memory=False,
                        limit_s=0.1)
    assert t.times_ms[0] >= 300 and len(t.times_ms) == 1 and "one call only" in t.note


def test_probe_copy_bandwidth_on_cpu():
    from vsuite.bench.machine import probe_copy_bandwidth

    assert probe_copy_bandwidth(4 << 20, tries=2, device="cpu") > 1e6
