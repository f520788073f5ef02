"""`vsuite bench-kernels` end to end: a tiny real run, budget skips, JSON on stdout, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vsuite.bench.config import BenchConfig
from vsuite.bench.report import RECORD_KEYS
from vsuite.tasks import bench_kernels as task

# the Triton interpreter is left off so lightning-triton is listed as unavailable on a CPU machine
ENV = {**{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}, "HF_HUB_OFFLINE": "1"}


def vsuite(*args, cwd=None, env=None):
    """This interpreter's vsuite (not whatever `vsuite` is first on PATH)."""
    return subprocess.run([sys.executable, "-m", "vsuite", *args],
                          capture_output=True, text=True, env={**ENV, **(env or {})}, cwd=cwd, timeout=120)


def test_tiny_real_run_writes_json_and_png(tmp_path):
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    r = vsuite("bench-kernels", "--seq", "64", "--seq", "128", "--heads", "2", "--dim", "16", "--repeats", "1",
               "--json", str(out_json), "--plot", str(out_png), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out_json.read_text())
    assert set(doc) >= {"machine", "config", "results"}
    m = doc["machine"]
    for key in ("device", "cpu_name", "threads", "torch", "triton", "cuda", "peak_flops", "peak_bytes_per_s",
                "peak_flops_source"):
        assert key in m
    assert m["peak_flops"] > 0 and doc["config"]["device"] == "cpu" and doc["config"]["dtype"] == "float32"
    names = {r["impl"] for r in doc["results"]}
    assert {"lightning-torch", "linear-naive", "sdpa", "lightning-triton", "toeplitz-fft"} <= names
    for rec in doc["results"]:
        assert set(RECORD_KEYS) <= set(rec), set(RECORD_KEYS) - set(rec)
        assert rec["seq"] in (64, 128) and rec["heads"] == 2 and rec["dim"] == 16
        if not rec["skipped"]:
            assert rec["ms"] > 0 and rec["flops_per_s"] > 0 and rec["check_error"] < 1e-3
    lt = [r for r in doc["results"] if r["impl"] == "lightning-torch"]
    assert all(not r["skipped"] for r in lt) and lt[0]["speedup"] > 0
    tri = [r for r in doc["results"] if r["impl"] == "lightning-triton"]
    import torch

    if not torch.cuda.is_available():
        assert all(r["skipped"] and "CUDA" in r["reason"] for r in tri)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lightning-torch" in r.stdout  # the table on stdout
    assert "bench-kernels: " in r.stderr  # progress on stderr


def test_small_budget_skips_sdpa_at_the_larger_size_with_an_estimate(tmp_path, capsys):
    cfg = BenchConfig(seq=[64, 128], heads=2, dim=16, impl=["sdpa", "lightning-torch"], budget=1e-6, repeats=1,
                      check=False)
    doc = task.run(cfg, json_path=tmp_path / "b.json")
    sdpa = {r["seq"]: r for r in doc["results"] if r["impl"] == "sdpa"}
    assert not sdpa[64]["skipped"] and sdpa[64]["ms"] > 0
    big = sdpa[128]
    assert big["skipped"] and big["ms"] is None
    assert big["estimated_ms"] == pytest.approx(4 * sdpa[64]["ms"])
    assert big["reason"].startswith("estimated from N=64 measured at") and "quadratic extrapolation" in big["reason"]
    lt = {r["seq"]: r for r in doc["results"] if r["impl"] == "lightning-torch"}
    assert lt[128]["skipped"] and lt[128]["estimated_ms"] == pytest.approx(2 * lt[64]["ms"])
    assert lt[128]["speedup"] == pytest.approx(big["estimated_ms"] / lt[128]["estimated_ms"])
    assert lt[128]["speedup_estimated"] is True
    assert "(est.)" in capsys.readouterr().out
    assert json.loads((tmp_path / "b.json").read_text())["results"]


def test_json_dash_keeps_stdout_pure_json(capsys):
    cfg = BenchConfig(seq=[32], heads=1, dim=8, impl=["lightning-torch"], repeats=1, baseline="lightning-torch")
    task.run(cfg, json_path="-")
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [r["impl"] for r in doc["results"]] == ["lightning-torch"]
    assert "lightning-torch" in captured.err  # the table went to stderr


def test_failed_check_fails_the_row(monkeypatch, capsys):
    from vsuite.bench import registry

    import dataclasses

    impl = registry.get("lightning-torch")

    def wrong(heads, device):
        fwd = impl.forward(heads, device)
        return lambda *a: fwd(*a) * 2

    monkeypatch.setitem(registry.REGISTRY, "lightning-torch", dataclasses.replace(impl, forward=wrong))
    cfg = BenchConfig(seq=[32], heads=1, dim=8, impl=["lightning-torch"], repeats=1, baseline="lightning-torch")
    doc = task.run(cfg)
    (rec,) = doc["results"]
    assert rec["skipped"] and rec["reason"].startswith("check failed") and rec["check_error"] > 0.5
    assert rec["ms"] is None


def test_unavailable_impl_asked_for_is_skipped_with_a_warning(monkeypatch, capsys):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cfg = BenchConfig(seq=[32], heads=1, dim=8, impl=["lightning-triton"], repeats=1, check=False)
    doc = task.run(cfg)
    tri = [r for r in doc["results"] if r["impl"] == "lightning-triton"]
    assert tri[0]["skipped"] and "CUDA" in tri[0]["reason"]
    assert "lightning-triton is not available" in capsys.readouterr().err
    assert any(r["impl"] == "sdpa" and not r["skipped"] for r in doc["results"])  # the baseline is added


@pytest.mark.triton
def test_triton_path_through_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    cfg = BenchConfig(seq=[64], heads=1, dim=16, impl=["lightning-triton"], baseline="lightning-triton",
                      repeats=1, warmup=0, mode="fwdbwd")
    (rec,) = task.run(cfg)["results"]
    assert not rec["skipped"], rec["reason"]
    assert rec["check_error"] < 1e-3 and rec["chunk"] == 64


def test_list_implementations(capsys):
    task.list_implementations()
    text = capsys.readouterr().out
    for name in ("lightning-torch", "sdpa", "toeplitz-fft", "fla-simple-gla"):
        assert name in text


@pytest.mark.parametrize("args, code", [
    (["--seq", "-5"], 2),
    (["--seq", "64", "--impl", "no-such-kernel"], 2),
    (["--seq", "64", "--device", "cuda"], 6),
    (["--seq", "64", "--dtype", "float8"], 2),
    (["--seq", "64", "--heads", "0"], 2),
])
def test_bad_arguments_exit_codes(tmp_path, args, code):
    import torch

    if args[-1] == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out_json = tmp_path / "never.json"
    r = vsuite("bench-kernels", *args, "--json", str(out_json), cwd=tmp_path)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert not out_json.exists() and r.stdout == ""
    if code == 2 and args[-2].startswith("--"):
        assert args[-2] in lines[0] and "<defaults>" not in lines[0]  # names the flag, not the recipe


@pytest.mark.parametrize("columns", [80, 120])
def test_table_keeps_implementation_names_whole_on_narrow_terminals(tmp_path, columns):
    """Rich used to fold `lightning-torch` into `lightni`/`ng-tor`/`ch` at <= 120 columns."""
    from vsuite.bench import registry

    r = vsuite("bench-kernels", "--seq", "32", "--heads", "1", "--dim", "8", "--repeats", "1", "--no-check",
               "--budget", "1e-9", "--json", str(tmp_path / "b.json"), cwd=tmp_path, env={"COLUMNS": str(columns)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= columns
    names = {rec["impl"] for rec in json.loads((tmp_path / "b.json").read_text())["results"]}
    assert set(registry.names()) <= names  # every registered implementation has a row
    for name in names:
        assert any(f" {name} " in line for line in lines), f"{name} is not whole in the {columns}-column table"


def test_layout_widths():
    from vsuite.bench.report import LAYOUTS, layout_for

    assert layout_for(None) == layout_for(200) == "full" and layout_for(120) == "compact"
    assert layout_for(80) == "narrow"
    assert set(LAYOUTS["narrow"]) < set(LAYOUTS["compact"]) < set(LAYOUTS["full"])
