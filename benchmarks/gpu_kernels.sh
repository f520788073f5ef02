#!/usr/bin/env bash
# One prepared device run (see ../shared/reference/gpu-device-notes.md): wheels the GPU image lacks are carried in
# .whl/; vsuite runs from the source tree. Every step has its own timeout; logs and JSON land in $OUT.
# Usage (device tool): carry [".whl"], command: bash benchmarks/gpu_kernels.sh   (about 5-8 min; step limits add up to 470 s)
# PEERS=1 bash benchmarks/gpu_kernels.sh adds the peer benchmarks and the config sweep measured on 2026-11-28 (+~6 min).
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
# $OUT brings back at most 8 files: work in $W, re-pack it into $OUT/gpu_kernels.tgz after every step.
W=/tmp/gpu-work; mkdir -p "$W"
pack() { tar czf "$OUT/gpu_kernels.tgz" -C "$W" .; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/pp && ln -sfn "$PWD/kernels" /tmp/pp/vsuite_kernels && ln -sfn "$PWD/vsuite" /tmp/pp/vsuite
export PYTHONPATH=/tmp/site:/tmp/pp HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
step() { local t=$1 name=$2; shift 2; echo "=== $name ($(date +%T), limit ${t}s)"; local s=$SECONDS
  timeout "$t" "$@" > "$W/$name.log" 2>&1; local rc=$?; tail -n "${TAIL:-6}" "$W/$name.log"; echo "=== $name rc=$rc $((SECONDS - s))s"; pack; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.total --format=csv,noheader
# 1. correctness, 7 processes (compiling dominates; GPU work is tiny): small head dims and awkward shapes with the
#    chunk kernels (check) and the block forward + block backward (block-check, which also compares the block
#    launchers with the chunk ones, forward and backward)
P=benchmarks/lightning_gpu_probe.py
for d in 1x1,3x3,8x3 8x8,16x16,16x3 3x16,32x32,48x80 128x128,256x64; do
  timeout 120 python3 $P check --dims $d --json "$W/check_${d//,/_}.json" > "$W/check_${d//,/_}.log" 2>&1 &
done
for d in 1x1,3x3,8x3,8x8 16x16,16x3,3x16,32x32 48x80,128x128,256x64; do
  timeout 120 python3 $P block-check --dims $d --json "$W/block_${d//,/_}.json" > "$W/block_${d//,/_}.log" 2>&1 &
done; wait; cat "$W"/check_*.log "$W"/block_*.log | grep -E "FAIL|cases ok|launchers|Error|error" | head -20; pack
# 2. chunk vs block forward side by side (B1 H32 N64K D128 and B8 H16 N8192 D64 bf16): passes, fwd, fwd+bwd, memory
TAIL=11 step 170 modes python3 $P modes --json "$W/modes.json"
# 2b. fwd+bwd for (fwd, bwd) in {chunk, block}^2 at both shapes, backward launchers alone, block backward knobs
TAIL=13 step 90 bwd_modes python3 $P bwd-modes --json "$W/bwd_modes.json"
# 3. the headline through bench-kernels (vsuite only; host side included): all chunk kernels, then the block
#    forward with the block backward (the mixed pairs are in bwd_modes)
for fwd in chunk block; do
  TAIL=8 step 45 bench64k_$fwd env VSUITE_LIGHTNING_FWD=$fwd VSUITE_LIGHTNING_BWD=$fwd python3 -m vsuite bench-kernels \
    --batch 1 --heads 32 \
    --seq 65536 --dim 128 --dtype bfloat16 --device cuda --mode fwdbwd --impl lightning-triton --json "$W/bench64k_$fwd.json"
done
[ "${PEERS:-0}" = 1 ] || exit 0
# 4. optional: all peers at the headline shape, where the chunk path's time goes, the config sweep, the second shape
#    with peers (fla skipped there: it autotunes again for D=64, over a minute)
TAIL=40 step 220 bench64k python3 -m vsuite bench-kernels --recipe gpu-b1h32-64k-fwdbwd --json "$W/bench64k.json"
TAIL=3 step 45 passes python3 $P passes --json "$W/passes.json"
TAIL=12 step 100 sweep python3 $P sweep --json "$W/sweep.json"
TAIL=20 step 60 bench8k python3 -m vsuite bench-kernels --batch 8 --heads 16 --seq 8192 --dim 64 --dtype bfloat16 \
  --device cuda --mode fwdbwd --impl lightning-triton --impl lightning-official --impl sdpa --json "$W/bench8k.json"
