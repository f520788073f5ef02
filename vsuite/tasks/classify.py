"""`vsuite classify VIDEO... --model M`: action recognition with a video classifier (LVT).

Each video is decoded into clips x crops views with the protocol the model was trained with (the checkpoint's
video_preprocessor_config.json, else defaults from its config), the softmax is averaged over the views and
the top-k classes are printed. With --json: one JSON document on stdout with the predictions and, per video,
the sampling record (frame indices, timestamps, fps, backend, resolution) of every clip.

Every video is probed before the model runs, so bad media fail fast (one-line error, exit 5); a missing
model exits 4.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..console import log, out
from ..errors import UsageError
from . import _classifier as C


def run(videos: list[str], *, model: str, top_k: int = 5, as_json: bool = False, clips: int = 1, crops: int = 1,
        backend: str = "auto", device: str = "auto") -> dict:
    if not videos:
        raise UsageError("give at least one video file")
    if top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {top_k}")
    C.check_views(clips, crops)
    from ..media import probe, resolve_backend

    try:
        resolve_backend(backend)
    except ValueError as err:
        raise UsageError(str(err)) from None
    folder = C.model_folder(model)
    for video in videos:  # bad media -> one-line error before any work
        probe(video)
    dev = C.resolve_device(device)
    net, pre = C.load_classifier(folder, dev)
    from ..data.video_classification import load_views, protocol

    log(f"model {folder} ({type(net).__name__}, {net.config.num_labels} classes) on {dev} | {pre.num_frames} frames, "
        f"{pre.sampling} sampling, {clips} clip(s) x {crops} crop(s)")
    k = min(top_k, net.config.num_labels)
    results = []
    for video in videos:
        views, record = load_views(video, pre, clips, crops, backend=backend)
        probs = C.video_probabilities(net, views, dev)
        values, ids = probs.topk(k)
        preds = [{"rank": r + 1, "label": C.label_name(net.config, int(i)), "id": int(i), "probability": float(p)}
                 for r, (p, i) in enumerate(zip(values, ids))]
        results.append({"video": str(video), "predictions": preds, "sampling": record})
    report = {"model": str(folder), "model_type": net.config.model_type, "device": str(dev),
              "protocol": protocol(pre, clips, crops, backend), "videos": results}
    if as_json:
        out(report)
    else:
        _print(results)
    return report


def _print(results: list[dict]) -> None:
    lines = []
    for res in results:
        lines.append(f"{Path(res['video'])}")
        width = max(len(p["label"]) for p in res["predictions"])
        for p in res["predictions"]:
            lines.append(f"  {p['rank']:>2}  {p['label']:<{width}}  {p['probability']:.4f}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
