"""GPU probe for the Triton Lightning kernels: small-head-dim correctness, per-pass times, config sweep.

Run on a CUDA machine (never in CI):  python benchmarks/lightning_gpu_probe.py {check|passes|sweep} [--json FILE]

- check:  every awkward (Dk, Dv) incl. 1, 3, 8, 16, fixed and packed (cu_seqlens) lengths, fp32 and bf16, fwd and
          grads against the fp32 naive reference, with NaN-poisoned scratch buffers. Prints one line per case
          before it runs (a fault kills the CUDA context, so the last line names the culprit).
- passes: B1 H32 N65536 D128 bf16: time of each kernel pass (state pass, output pass, backward passes) alone, to see
          where the forward and backward time goes.
- sweep:  the same shape under other num_warps / num_stages / state windows / chunk sizes (the shipped config is fixed
          because autotuning needs a GPU; this is the data to pick it from).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import triton

from vsuite_kernels.lightning import alibi_slopes, lightning_attn_naive
from vsuite_kernels.lightning import triton_bwd, triton_fwd
from vsuite_kernels.lightning.buffers import poison
from vsuite_kernels.lightning.triton_op import lightning_attn_triton

SHAPE = dict(B=1, H=32, N=65536, D=128)
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: TRITON_INTERPRET=1, a smoke run of `check`


def say(*a):
    print(*a, flush=True)


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def check_case(dk, dv, n, dtype, varlen):
    g = torch.Generator(device=DEV).manual_seed(dk * 1000 + dv * 10 + n)
    H = 3
    B = 1 if varlen else 2
    mk = lambda *s: (torch.randn(*s, device=DEV, generator=g) * 0.5)  # noqa: E731
    q, k, v = mk(B, H, n, dk), mk(B, H, n, dk), mk(B, H, n, dv)
    s = alibi_slopes(H, device=DEV)
    cu = torch.tensor([0, n // 3, n // 3, n], device=DEV, dtype=torch.int32) if varlen else None
    S = 3 if varlen else B
    h0 = mk(S, H, dk, dv)
    do = mk(B, H, n, dv)
    dht = mk(S, H, dk, dv)

    def run(fn, cast):
        xs = [t.to(cast).detach().requires_grad_(True) for t in (q, k, v)]
        h = h0.clone().requires_grad_(True)
        o, ht = fn(*xs, s, scale=0.7, initial_state=h, output_final_state=True, cu_seqlens=cu)
        (o.float() * do).sum().add((ht * dht).sum()).backward()
        return [o, ht] + [x.grad for x in xs] + [h.grad]

    ref = run(lightning_attn_naive, torch.float32)
    with poison():
        got = run(lightning_attn_triton, dtype)
    errs = [rel(a, b) for a, b in zip(got, ref)]
    nan = any(bool(torch.isnan(t).any()) for t in got)
    return max(errs), nan


CHECK_DIMS = "1x1,3x3,8x3,8x8,16x16,16x3,3x16,32x32,48x80,128x128,256x64"


def cmd_check(out, dims=CHECK_DIMS):
    rows, bad = [], 0
    dims = [tuple(int(x) for x in d.split("x")) for d in dims.split(",")]
    # Each (Dk, Dv, dtype, varlen) compiles its own kernels: fp32 runs packed, bf16 fixed-length.
    for dk, dv in dims:
        for n, varlen, dtype in ((300, True, torch.float32), (100, False, torch.bfloat16)):
            name = f"Dk={dk} Dv={dv} N={n} varlen={varlen} {str(dtype)[6:]}"
            say(f"[check] {name} ...")
            err, nan = check_case(dk, dv, n, dtype, varlen)
            tol = 2e-5 if dtype == torch.float32 else 2e-2
            ok = err <= tol and not nan
            bad += not ok
            say(f"[check] {name}: max rel err {err:.2e} nan={nan} {'ok' if ok else 'FAIL'}")
            rows.append(dict(dk=dk, dv=dv, n=n, varlen=varlen, dtype=str(dtype), err=err, nan=nan, ok=ok))
    say(f"[check] {len(rows) - bad}/{len(rows)} cases ok")
    return rows


def inputs(B, H, N, D, dtype=torch.bfloat16):
    g = torch.Generator(device=DEV).manual_seed(0)
    q, k, v = (torch.randn(B, H, N, D, device=DEV, generator=g, dtype=dtype) * 0.1 for _ in range(3))
    return q, k, v, alibi_slopes(H, device=DEV).contiguous()


def bench(fn):
    return triton.testing.do_bench(fn, warmup=5, rep=50)


def pass_times(chunk=64, window=None):
    """ms of each pass at SHAPE, window by window summed as the launchers run them."""
    B, H, N, D = SHAPE.values()
    q, k, v, s = inputs(B, H, N, D)
    do = torch.randn_like(v) * 0.1
    cfg = triton_fwd.KernelConfig.make(D, D, q.dtype, chunk)
    table = triton_fwd.ChunkTable.make(B, N, None, chunk)
    qkv = 3 * q.numel() * q.element_size()
    win = triton_fwd.StateWindows.make(table, H, D, D, qkv, window, cfg.state_dtype.itemsize)
    o = torch.empty_like(v)
    ckpt = torch.empty(win.count - 1, H, D, D, device=DEV)
    h = triton_fwd.state_buffer(q, win, cfg, "h")
    states = lambda: [triton_fwd.run_states(k, v, s, None, h, None, ckpt, table, cfg, win, w, True)  # noqa: E731
                      for w in range(win.count)]
    outputs = lambda: [triton_fwd.run_outputs(q, k, v, s, h, o, 1.0, table, cfg, win, w)  # noqa: E731
                       for w in range(win.count)]
    fwd = lambda: triton_fwd.lightning_forward(q, k, v, s, None, 1.0, table, cfg, win, False)  # noqa: E731
    _, _, ck = fwd()
    bwd = lambda: triton_bwd.lightning_backward(q, k, v, do, s, None, None, ck, 1.0, table, cfg, win, False)  # noqa: E731
    r = dict(windows=win.count, window_chunks=win.size, chunk=chunk, warps=cfg.num_warps,
             stages=triton_fwd.NUM_STAGES, states_ms=bench(states), outputs_ms=bench(outputs),
             fwd_ms=bench(fwd), bwd_ms=bench(bwd))
    r["fwdbwd_ms"] = r["fwd_ms"] + r["bwd_ms"]
    return r


def cmd_passes(out):
    r = pass_times()
    B, H, N, D = SHAPE.values()
    io = 4 * B * H * N * D * 2  # q, k, v read + o written, bf16
    r["fwd_io_GBps"] = io / r["fwd_ms"] / 1e6
    say(f"[passes] {json.dumps(r)}")
    return [r]


def cmd_sweep(out):
    rows = []
    base_warps = triton_fwd.KernelConfig.num_warps
    for warps in (4, 8):
        for stages in (1, 2, 3):
            triton_fwd.KernelConfig.num_warps = property(lambda self, w=warps: w)
            triton_fwd.NUM_STAGES = triton_bwd.NUM_STAGES = stages
            rows.append(_try(dict(chunk=64)))
    triton_fwd.KernelConfig.num_warps = base_warps
    triton_fwd.NUM_STAGES = triton_bwd.NUM_STAGES = 2
    for window in (64, 1024):
        rows.append(_try(dict(chunk=64, window=window)))
    rows.append(_try(dict(chunk=128)))
    return rows


def _try(kw):
    t0 = time.time()
    try:
        r = pass_times(**kw)
    except Exception as e:  # a config that fails to compile (shared memory) is data too
        r = dict(kw, error=f"{type(e).__name__}: {str(e)[:200]}")
    r["wall_s"] = round(time.time() - t0, 1)
    say(f"[sweep] {json.dumps(r)}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["check", "passes", "sweep"])
    ap.add_argument("--json")
    ap.add_argument("--dims", default=CHECK_DIMS, help="check: comma-separated DkxDv pairs")
    a = ap.parse_args()
    say(f"[{a.what}] {torch.cuda.get_device_name() if DEV == 'cuda' else 'cpu'} torch {torch.__version__} triton {triton.__version__}")
    rows = cmd_check(a.json, a.dims) if a.what == "check" else {"passes": cmd_passes, "sweep": cmd_sweep}[a.what](a.json)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.what == "check" and not all(r["ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
