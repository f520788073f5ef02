"""Decode and sampling cost of `vsuite caption --dense` on long videos, without the model.

    python benchmarks/caption_decode.py [--minutes 5 30] [--json out.json]

For each length, a synthetic 30 fps video with a hard cut every 20 s is encoded (160x120, x264),
then the media work of the dense caption pipeline runs exactly as `vsuite.tasks.caption` does
it: streaming scene detection (vsuite.media.detect_scenes), Vript's 3/4/5 frames per scene
(sample_vript_scene), and the sampled frames read by index in batches of 8 scenes
(read_frames). Reported: wall time as a multiple of real time (video seconds per wall second)
and the peak resident memory added by the run. Each length runs in a fresh subprocess so the
peaks don't mix; memory should not grow with the video's length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_video(path: Path, minutes: float, scene_s: float = 20.0) -> Path:
    import numpy as np

    from vsuite.media.synth import write_video

    fps, n = 30, int(minutes * 60 * 30)
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (64, 3), dtype=np.uint8)

    def frame(i):
        scene = int(i / fps // scene_s)
        img = np.empty((120, 160, 3), dtype=np.uint8)
        img[:] = palette[scene % 64]
        x = (i * 2) % 140  # a moving square keeps the encoder honest
        img[40:60, x:x + 20] = 255 - palette[scene % 64]
        return img

    return write_video(path, (frame(i) for i in range(n)), fps=fps, gop=250, crf=30)


def run_pipeline(path: str) -> dict:
    """The media part of the dense caption pipeline; returns timings and peak memory."""
    from vsuite.bench.measure import CpuPeakMemory
    from vsuite.media import detect_scenes, probe, read_frames, sample_vript_scene

    meter = CpuPeakMemory()
    meter.start()
    t0 = time.perf_counter()
    info = probe(path)
    scenes = detect_scenes(path)
    t1 = time.perf_counter()
    samples = [sample_vript_scene(info.num_frames, info.fps, s.start_time, s.end_time) for s in scenes]
    frames = 0
    for i in range(0, len(samples), 8):
        batch = [idx for s in samples[i:i + 8] for idx in s.indices]
        frames += len(read_frames(path, batch).indices)
    t2 = time.perf_counter()
    return {"duration_s": info.duration, "scenes": len(scenes), "frames_sampled": frames,
            "scene_detect_s": t1 - t0, "sample_decode_s": t2 - t1, "total_s": t2 - t0,
            "x_realtime": info.duration / (t2 - t0), "peak_mem_bytes": meter.stop()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 30])
    ap.add_argument("--json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run_pipeline(args.worker)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            video = make_video(Path(tmp) / f"v{minutes:g}.mp4", minutes)
            out = subprocess.run([sys.executable, __file__, "--worker", str(video)], capture_output=True, text=True,
                                 check=True)
            row = {"minutes": minutes, **json.loads(out.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"{minutes:g} min: {row['scenes']} scenes, {row['frames_sampled']} frames, "
                  f"{row['total_s']:.1f} s wall = {row['x_realtime']:.1f}x real time "
                  f"(scenes {row['scene_detect_s']:.1f} s, sampling {row['sample_decode_s']:.1f} s), "
                  f"peak +{row['peak_mem_bytes'] / 2**20:.0f} MiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
