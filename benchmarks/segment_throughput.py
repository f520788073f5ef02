"""`vsuite segment` on the CPU: frames per second and peak memory against video length.

    python benchmarks/segment_throughput.py [--minutes 1 10] [--json out.json]

Models (random weights: speed and memory do not depend on them): "tiny" = the avs-tiny-cpu recipe's model
(32 px), "resnet50" = the full AVS model with a ResNet-50 backbone, 128-channel neck, full VGGish, 224 px.
Videos: the synthetic AVS scene (two squares, a tone), 128x128, 8 fps, H.264 + AAC, of each length.
Each run is one `vsuite segment VIDEO --model M --fps 1` in a fresh process (imports included), timed by
wall clock, peak memory = that process's max RSS. Frames per second of segmenting proper comes from the
difference between two lengths, so start-up (imports, model load) cancels out.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_RUN = """
import json, resource, sys, time
t = time.perf_counter()
from vsuite.cli import run
code = run(sys.argv[1:])
print(json.dumps({"code": code, "wall_s": time.perf_counter() - t,
                  "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_models(root: Path) -> dict[str, Path]:
    import tomllib

    from vsuite.models.avs import AVSConfig, AVSModel

    recipe = tomllib.loads((Path(__file__).parent.parent / "recipes/finetune/avs-tiny-cpu.toml").read_text())
    tiny = AVSConfig(**recipe["model"]["config"], image_size=recipe["data"]["image_size"])
    full = AVSConfig(backbone="resnet50", image_size=224)
    out = {}
    for name, cfg in (("tiny", tiny), ("resnet50", full)):
        AVSModel(cfg).save_pretrained(root / name)
        out[name] = root / name
    return out


def make_video(path: Path, seconds: int) -> Path:
    from vsuite.data.avs_synthetic import write_synthetic_avs_video

    sounding = tuple("red" if (t // 7) % 2 == 0 else "blue" for t in range(seconds))
    write_synthetic_avs_video(path, sounding=sounding, size=128, fps=8)
    return path


def segment(video: Path, model: Path, out: Path) -> dict:
    argv = ["segment", str(video), "--model", str(model), "--out", str(out), "--fps", "1", "--device", "cpu"]
    r = subprocess.run([sys.executable, "-c", _RUN, *argv], capture_output=True, text=True, check=True)
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["code"] == 0, r.stderr[-2000:]
    rec["frames"] = len(json.loads((out / "summary.json").read_text())["frames"])
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs=2, default=[1, 10], help="short and long video length")
    ap.add_argument("--resnet-minutes", type=float, nargs=2, default=[0.5, 1.5],
                    help="lengths for the ResNet-50-sized model (slower)")
    ap.add_argument("--json")
    a = ap.parse_args()
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = make_models(tmp)
        for name, minutes in (("tiny", a.minutes), ("resnet50", a.resnet_minutes)):
            runs = []
            for m in minutes:
                video = tmp / f"scene-{m:g}min.mp4"
                if not video.exists():
                    make_video(video, int(m * 60))
                rec = segment(video, models[name], tmp / f"out-{name}-{m:g}")
                rec.update(model=name, minutes=m)
                runs.append(rec)
                print(json.dumps(rec), flush=True)
            (s, l) = runs
            fps = (l["frames"] - s["frames"]) / (l["wall_s"] - s["wall_s"])
            rows.append({"model": name, "runs": runs, "frames_per_s": fps})
            print(f"{name}: {fps:.1f} frames/s; peak RSS {s['max_rss_mib']:.0f} MiB ({s['minutes']:g} min) vs "
                  f"{l['max_rss_mib']:.0f} MiB ({l['minutes']:g} min)", flush=True)
    doc = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                       "torch": torch.__version__}, "results": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
