"""GPU probe for the Triton Lightning kernels: small-head-dim correctness, per-pass times, config sweep.

Run on a CUDA machine (never in CI):
    python benchmarks/lightning_gpu_probe.py {check|block-check|passes|modes|bwd-modes|sweep} [--json FILE]

- check:  every awkward (Dk, Dv) incl. 1, 3, 8, 16, fixed and packed (cu_seqlens) lengths, fp32 and bf16, fwd and
          grads against the fp32 naive reference, with NaN-poisoned scratch buffers. Prints one line per case
          before it runs (a fault kills the CUDA context, so the last line names the culprit).
- passes: B1 H32 N65536 D128 bf16: time of each kernel pass (state pass, output pass, backward passes) alone, to see
          where the forward and backward time goes.
- sweep:  the same shape under other num_warps / num_stages / state windows / chunk sizes (the shipped config is fixed
          because autotuning needs a GPU; this is the data to pick it from).
- block-check: the block forward and the block backward (fwd_mode="block", bwd_mode="block": triton_fwd_block.py,
          triton_bwd_block.py; Dk or Dv > 128 fall back to the chunk kernels) like `check`, with short blocks and
          state windows so blocks, windows and sequence starts interleave; plus the block launchers against the chunk
          launchers at D = 64, 128: forward o, final state, checkpoints (the chunk backward's resume points, so
          the chunk backward after the block forward is covered) and backward dq, dk, dv, d(initial state).
- modes:  "chunk" vs "block" forward side by side at B1 H32 N65536 D128 and B8 H16 N8192 D64 bf16: each kernel pass
          alone, the forward and fwd+bwd through the autograd op, peak memory of the forward; the block output kernel
          at 4 and 8 warps, 2 stages, blocks of 8 / 16 / 32 chunks (the block path becomes the default once it wins).
- bwd-modes: fwd+bwd through the op for (fwd, bwd) in {chunk, block}^2 at both shapes, with the backward launchers
          alone and the training step's peak extra memory; then the block backward's knobs at the first shape (split
          tile 32 / 128, 4 warps for the walks, blocks of 8 / 32 chunks).
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
from vsuite_kernels.lightning import triton_bwd_block as tbb
from vsuite_kernels.lightning import triton_fwd_block as tfb
from vsuite_kernels.lightning.buffers import poison
from vsuite_kernels.lightning.triton_op import lightning_attn_triton

SHAPE = dict(B=1, H=32, N=65536, D=128)
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: TRITON_INTERPRET=1, a smoke run of `check`


def say(*a):
    print(*a, flush=True)


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def check_case(dk, dv, n, dtype, varlen, **kw):
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
        o, ht = fn(*xs, s, scale=0.7, initial_state=h, output_final_state=True, cu_seqlens=cu,
                   **(kw if fn is lightning_attn_triton else {}))
        (o.float() * do).sum().add((ht * dht).sum()).backward()
        return [o, ht] + [x.grad for x in xs] + [h.grad]

    ref = run(lightning_attn_naive, torch.float32)
    with poison():
        got = run(lightning_attn_triton, dtype)
    errs = [rel(a, b) for a, b in zip(got, ref)]
    nan = any(bool(torch.isnan(t).any()) for t in got)
    return max(errs), nan


CHECK_DIMS = "1x1,3x3,8x3,8x8,16x16,16x3,3x16,32x32,48x80,128x128,256x64"


def cmd_check(out, dims=CHECK_DIMS, **kw):
    rows, bad = [], 0
    tag = "block-check" if kw else "check"
    dims = [tuple(int(x) for x in d.split("x")) for d in dims.split(",")]
    # Each (Dk, Dv, dtype, varlen) compiles its own kernels: fp32 runs packed, bf16 fixed-length.
    for dk, dv in dims:
        for n, varlen, dtype in ((300, True, torch.float32), (100, False, torch.bfloat16)):
            name = f"Dk={dk} Dv={dv} N={n} varlen={varlen} {str(dtype)[6:]}"
            say(f"[{tag}] {name} ...")
            err, nan = check_case(dk, dv, n, dtype, varlen, **kw)
            tol = 2e-5 if dtype == torch.float32 else 2e-2
            ok = err <= tol and not nan
            bad += not ok
            say(f"[{tag}] {name}: max rel err {err:.2e} nan={nan} {'ok' if ok else 'FAIL'}")
            rows.append(dict(dk=dk, dv=dv, n=n, varlen=varlen, dtype=str(dtype), err=err, nan=nan, ok=ok))
    say(f"[{tag}] {len(rows) - bad}/{len(rows)} cases ok")
    return rows


# Block forward + backward: blocks of 2 chunks and windows of 3 chunks at N = 300 / 100 (5 / 2 chunks per sequence).
BLOCK_CHECK = dict(fwd_mode="block", bwd_mode="block", block_chunks=2, state_window=3)


def launcher_case(d, dtype, n=4096, H=4):
    """The block launcher against the chunk launcher on the same inputs: o, final state and the
    checkpoints the backward reads (relative errors; bf16 o differ by rounding order only)."""
    q, k, v, s = inputs(1, H, n, d, dtype)
    h0 = torch.randn(1, H, d, d, device=DEV) * 0.1
    cfg = triton_fwd.KernelConfig.make(d, d, dtype)
    table = triton_fwd.ChunkTable.make(1, n, None, cfg.chunk)
    win = triton_fwd.StateWindows.make(table, H, d, d, 0, 5, cfg.state_dtype.itemsize)  # windows of 5 chunks
    with poison():
        a = triton_fwd.lightning_forward(q, k, v, s, h0, 1.0, table, cfg, win, True)
        b = tfb.lightning_forward_block(q, k, v, s, h0, 1.0, table, cfg, win, True, 4)
    written = ~torch.isnan(a[2])
    same_slots = bool(torch.equal(written, ~torch.isnan(b[2])))
    errs = [rel(b[0], a[0]), rel(b[1], a[1]), rel(b[2][written], a[2][written])]
    # the backwards: chunk (from the chunk forward's checkpoints) vs block, d(final state) seeded
    do, dht = torch.randn_like(v) * 0.1, torch.randn_like(h0) * 0.1
    with poison():
        ga = triton_bwd.lightning_backward(q, k, v, do, s, h0, dht, a[2], 1.0, table, cfg, win, True)
        gb = tbb.lightning_backward_block(q, k, v, do, s, h0, dht, 1.0, table, cfg, True, 4)
    errs += [rel(y, x) for x, y in zip(ga, gb)]
    same_slots &= not any(bool(torch.isnan(y).any()) for y in gb)
    return errs, same_slots


def cmd_block_check(out, dims=CHECK_DIMS):
    rows = cmd_check(out, dims, **BLOCK_CHECK)
    for d, dtype in ((64, torch.bfloat16), (128, torch.bfloat16), (128, torch.float32)):
        errs, same = launcher_case(d, dtype)
        tol = 1e-5 if dtype == torch.float32 else 1e-2
        tol_grad = 3e-5 if dtype == torch.float32 else 2e-2  # bf16 gradients: rounding order differs
        ok = same and max(errs[:3]) <= tol and max(errs[3:]) <= tol_grad
        say(f"[block-check] launchers D={d} {str(dtype)[6:]}: rel err o/ht/ckpt {errs[0]:.1e}/{errs[1]:.1e}/"
            f"{errs[2]:.1e} dq/dk/dv/dh0 {'/'.join(f'{e:.1e}' for e in errs[3:])} same ckpt slots, no NaN={same} "
            f"{'ok' if ok else 'FAIL'}")
        rows.append(dict(launchers=True, d=d, dtype=str(dtype), errs=errs, same_slots=same, ok=ok))
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


MODE_SHAPES = ((1, 32, 65536, 128), (8, 16, 8192, 64))


def peak_mib(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def mode_times(B, H, N, D, mode, nb=None, stages=None):
    """One forward mode at one shape: kernel passes alone, then fwd and fwd+bwd through the op."""
    q, k, v, s = inputs(B, H, N, D)
    do = torch.randn_like(v) * 0.1
    cfg = triton_fwd.KernelConfig.make(D, D, q.dtype)
    table = triton_fwd.ChunkTable.make(B, N, None, cfg.chunk)
    qkv = 3 * q.numel() * q.element_size()
    win = triton_fwd.StateWindows.make(table, H, D, D, qkv, None, cfg.state_dtype.itemsize)
    r = dict(B=B, H=H, N=N, D=D, mode=mode, windows=win.count)
    if mode == "chunk":
        ckpt = torch.empty(win.count - 1, H, D, D, device=DEV)
        h = triton_fwd.state_buffer(q, win, cfg, "h")
        o = torch.empty_like(v)
        r["states_ms"] = bench(lambda: [triton_fwd.run_states(k, v, s, None, h, None, ckpt, table, cfg, win, w, True)
                                        for w in range(win.count)])
        r["outputs_ms"] = bench(lambda: [triton_fwd.run_outputs(q, k, v, s, h, o, 1.0, table, cfg, win, w)
                                         for w in range(win.count)])
        r["fwd_kernels_ms"] = bench(lambda: triton_fwd.lightning_forward(q, k, v, s, None, 1.0, table, cfg, win, False))
    else:
        nb = tfb.block_chunks(table.n_chunks, H, cfg.nv, nb)
        r.update(block_chunks=nb, output_warps=tfb.output_warps(cfg), output_stages=tfb.OUTPUT_STAGES)
        r["fwd_kernels_ms"] = bench(lambda: tfb.lightning_forward_block(q, k, v, s, None, 1.0, table, cfg, win,
                                                                        False, nb))
    kw = dict(fwd_mode=mode, bwd_mode="chunk", block_chunks=nb)

    def fwd():
        return lightning_attn_triton(q, k, v, s, **kw)

    xs = [t.detach().requires_grad_(True) for t in (q, k, v)]

    def fwdbwd():
        for x in xs:
            x.grad = None  # no accumulation kernels in the timing
        o, _ = lightning_attn_triton(*xs, s, **kw)
        o.backward(do)

    r["fwd_ms"] = bench(fwd)
    r["fwdbwd_ms"] = bench(fwdbwd)
    r["fwd_peak_mib"] = round(peak_mib(fwd), 1)
    r["fwd_io_GBps"] = 4 * q.numel() * q.element_size() / r["fwd_kernels_ms"] / 1e6  # q, k, v read + o written
    return r


def cmd_modes(out):
    rows = []
    for B, H, N, D in MODE_SHAPES:
        for mode in ("chunk", "block"):
            rows.append(_try(dict(B=B, H=H, N=N, D=D, mode=mode), mode_times, "modes"))
    # the block output kernel's free knobs, at the first shape: warps, chunks per block
    base = tfb.output_warps
    for warps in (4, 8):
        tfb.output_warps = lambda cfg, w=warps: w
        rows.append(_try(dict(zip("BHND", MODE_SHAPES[0]), mode="block"), mode_times, "modes"))
    tfb.output_warps = base
    tfb.OUTPUT_STAGES = 2
    rows.append(_try(dict(zip("BHND", MODE_SHAPES[0]), mode="block", stages=2), mode_times, "modes"))
    tfb.OUTPUT_STAGES = triton_fwd.NUM_STAGES
    for nb in (8, 32):
        rows.append(_try(dict(zip("BHND", MODE_SHAPES[0]), mode="block", nb=nb), mode_times, "modes"))
    return rows


def bwd_times(B, H, N, D, fwd, bwd, nb=None, launchers=False, **knobs):
    """fwd+bwd through the op for one (forward, backward) pair, its peak extra memory, and (launchers) the
    two backward launchers alone. knobs: SPLIT_TILE / walk_warps of triton_bwd_block, set for this row."""
    q, k, v, s = inputs(B, H, N, D)
    do = torch.randn_like(v) * 0.1
    old = dict(SPLIT_TILE=tbb.SPLIT_TILE, walk_warps=tbb.walk_warps)
    if "split" in knobs:
        tbb.SPLIT_TILE = knobs["split"]
    if "warps" in knobs:
        tbb.walk_warps = lambda cfg, full, split, w=knobs["warps"]: w
    try:
        r = dict(B=B, H=H, N=N, D=D, fwd=fwd, bwd=bwd, block_chunks=nb, **knobs)
        xs = [t.detach().requires_grad_(True) for t in (q, k, v)]

        def fwdbwd():
            for x in xs:
                x.grad = None
            o, _ = lightning_attn_triton(*xs, s, fwd_mode=fwd, bwd_mode=bwd, block_chunks=nb)
            o.backward(do)

        r["fwdbwd_ms"] = bench(fwdbwd)
        r["fwdbwd_peak_mib"] = round(peak_mib(fwdbwd), 1)  # o, dq, dk, dv included
        if launchers:
            cfg = triton_fwd.KernelConfig.make(D, D, q.dtype)
            table = triton_fwd.ChunkTable.make(B, N, None, cfg.chunk)
            win = triton_fwd.StateWindows.make(table, H, D, D, 3 * q.numel() * q.element_size(), None,
                                               cfg.state_dtype.itemsize)
            _, _, ck = triton_fwd.lightning_forward(q, k, v, s, None, 1.0, table, cfg, win, False)
            r["bwd_chunk_kernels_ms"] = bench(lambda: triton_bwd.lightning_backward(
                q, k, v, do, s, None, None, ck, 1.0, table, cfg, win, False))
            r["bwd_block_kernels_ms"] = bench(lambda: tbb.lightning_backward_block(
                q, k, v, do, s, None, None, 1.0, table, cfg, False, nb))
    finally:
        tbb.SPLIT_TILE, tbb.walk_warps = old["SPLIT_TILE"], old["walk_warps"]
    return r


def cmd_bwd_modes(out):
    rows = []
    for B, H, N, D in MODE_SHAPES:
        for fwd in ("chunk", "block"):
            for bwd in ("chunk", "block"):
                rows.append(_try(dict(B=B, H=H, N=N, D=D, fwd=fwd, bwd=bwd, launchers=(fwd, bwd) == ("block", "block")),
                                 bwd_times, "bwd-modes"))
    # the block backward's free knobs, at the first shape, after the block forward
    first = dict(zip("BHND", MODE_SHAPES[0]), fwd="block", bwd="block")
    for knobs in (dict(split=128), dict(split=32), dict(warps=4), dict(nb=8), dict(nb=32)):
        rows.append(_try(dict(first, **knobs), bwd_times, "bwd-modes"))
    return rows


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


def _try(kw, fn=pass_times, tag="sweep"):
    t0 = time.time()
    try:
        r = fn(**kw)
    except Exception as e:  # a config that fails to compile (shared memory) is data too
        r = dict(kw, error=f"{type(e).__name__}: {str(e)[:200]}")
    r["wall_s"] = round(time.time() - t0, 1)
    say(f"[{tag}] {json.dumps(r)}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["check", "block-check", "passes", "modes", "bwd-modes", "sweep"])
    ap.add_argument("--json")
    ap.add_argument("--dims", default=CHECK_DIMS, help="check: comma-separated DkxDv pairs")
    a = ap.parse_args()
    say(f"[{a.what}] {torch.cuda.get_device_name() if DEV == 'cuda' else 'cpu'} torch {torch.__version__} triton {triton.__version__}")
    if a.what in ("check", "block-check"):
        rows = (cmd_check if a.what == "check" else cmd_block_check)(a.json, a.dims)
    else:
        rows = {"passes": cmd_passes, "modes": cmd_modes, "bwd-modes": cmd_bwd_modes,
                "sweep": cmd_sweep}[a.what](a.json)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.what in ("check", "block-check") and not all(r["ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
