"""`vsuite eval classify --model M --data LIST --root DIR`: top-1 / top-5 accuracy with multi-view testing.

Every video of the list is cut into clips x crops views (the model's protocol; see
vsuite.data.video_classification), the softmax is averaged over its views, and the video counts for top-k
when its class is among the k most probable (k = min(5, classes) for "top5"; ties by class id: the scorer
is vsuite.metrics.topk, shared with the finetune's validation). The list's labels are matched
to the model's classes by name (class ids are taken as they are when the list has no names). OUT gets
results.json + samples.jsonl (vsuite.metrics.results: the one format of every eval; the protocol included),
the table goes to stderr, --json prints results.json, --predictions FILE also writes one JSON line per video
with its frame indices.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..console import Progress, log, out
from ..errors import DataError, UsageError


def to_model_ids(videos, config) -> list[int]:
    """Class ids of the list's items in the model's numbering (by class name when the list has names)."""
    num = config.num_labels
    label2id = {str(k): int(v) for k, v in (getattr(config, "label2id", None) or {}).items()}
    default_names = all(name == f"LABEL_{i}" or name == str(i) for name, i in label2id.items())
    ids = []
    for item in videos.items:
        if item.label is None:
            raise DataError(f"{videos.source}: {item.path.name} has no label; evaluation needs labels")
        if videos.classes is None or default_names:
            mid = item.label
        else:
            name = videos.classes[item.label]
            if name not in label2id:
                raise DataError(f"{videos.source}: class {name!r} is not one of the model's {num} classes "
                                f"(e.g. {', '.join(list(label2id)[:3])})")
            mid = label2id[name]
        if not 0 <= mid < num:
            raise DataError(f"{videos.source}: class id {mid} is outside the model's {num} classes")
        ids.append(mid)
    return ids


def run(*, model: str, data: str, root: str | None = None, labels: str | None = None, clips: int = 1,
        crops: int = 1, backend: str = "auto", device: str = "auto", limit: int = 0, as_json: bool = False,
        predictions: Path | None = None, out: Path | None = None) -> dict:
    """Score, write OUT/results.json + samples.jsonl, print the table (stderr); returns results.json's document."""
    from ..data.video_classification import VideoPreprocess, check_views, load_views, protocol, read_video_list
    from ..devices import resolve_device
    from ..metrics.topk import average_views, top_classes, topk_accuracy
    from ..models.video_classifier import load_classifier, model_folder, view_probabilities

    check_views(clips, crops)
    if limit < 0:
        raise UsageError(f"--limit must be >= 0, got {limit}")

    folder = model_folder(model)
    videos = read_video_list(data, root or None, labels=labels or None)
    items = videos.items[:limit] if limit else videos.items
    dev = resolve_device(device)
    net = load_classifier(folder, dev)
    pre = VideoPreprocess.for_model(folder if folder.is_dir() else None, net.config)
    truth = to_model_ids(videos, net.config)[: len(items)]
    k5 = min(5, net.config.num_labels)
    log(f"model {folder} ({net.config.num_labels} classes) on {dev} | {len(items)} videos of {data} "
        f"({videos.format}) | {pre.num_frames} frames, {pre.sampling} sampling, {clips} clip(s) x {crops} crop(s)")
    import torch

    start = time.monotonic()
    lines, probs, samples, hits1 = [], [], [], 0
    with Progress("eval", len(items), every=max(1, len(items) // 10)) as progress:
        for item, label in zip(items, truth):
            views, record = load_views(item.path, pre, clips, crops, backend=backend)
            p = average_views(view_probabilities(net, views, dev))  # [classes]
            probs.append(p)
            top = top_classes(p, k5)
            hits1 += int(top[0] == label)
            samples.append({"id": sample_id(item.path, videos), "target": label, "response": top,
                            "score": {"top1": int(top[0] == label), "top5": int(label in top)},
                            "probabilities": [round(float(p[i]), 6) for i in top]})
            if predictions is not None:
                lines.append(json.dumps({"video": str(item.path), "label": label, "top5": top,
                                         "probabilities": [round(float(p[i]), 6) for i in top],
                                         "frames": [c["indices"] for c in record["clips"]]}))
            progress.advance(f"top1 {hits1 / (progress.done + 1):.3f}")
    n = len(items)
    scores = topk_accuracy(torch.stack(probs), truth, ks=(1, 5))
    report = {"model": str(folder), "data": str(data), "format": videos.format, "videos": n,
              "classes": net.config.num_labels, "top1": scores["top1"], "top5": scores["top5"], "top5_k": k5,
              "protocol": protocol(pre, clips, crops, backend), "device": str(dev),
              "elapsed_s": round(time.monotonic() - start, 3)}
    if predictions is not None:
        Path(predictions).write_text("\n".join(lines) + "\n")
    return write_report(report, samples, out, data, as_json=as_json)


def sample_id(path: Path, videos) -> str:
    """A video's id in samples.jsonl: its path below the list's folder (the file name when outside it)."""
    try:
        return str(Path(path).resolve().relative_to(Path(videos.source).resolve().parent))
    except (ValueError, OSError):
        return Path(path).name


def write_report(report: dict, samples: list[dict], out_dir: Path | None, data: str, *, as_json: bool) -> dict:
    """OUT/results.json + samples.jsonl through vsuite.metrics.results (scores in percent, as papers report
    Kinetics accuracy; the fractions stay in details), the table on stderr, results.json on stdout with --json."""
    import shlex

    from rich.table import Table

    from ..console import stderr
    from ..metrics.results import default_out, write_results

    out_dir = Path(out_dir) if out_dir else default_out("classify", report["model"], data)
    proto = report["protocol"]
    k5 = report["top5_k"]
    scores = {"top1": 100 * report["top1"], f"top{k5}": 100 * report["top5"]}
    command = shlex.join(["vsuite", "eval", "classify", "--model", report["model"], "--data", str(Path(data).resolve()),
                          "--clips", str(proto.get("clips", 1)), "--crops", str(proto.get("crops", 1)),
                          "--device", report["device"], "--out", str(out_dir.resolve())])
    protocol = {"frames": proto.get("num_frames"), "fps": None, "decoder": proto.get("backend"),
                "prompt_hash": None, **proto}
    doc = write_results(out_dir, scores, samples, command, {"name": report["model"], "source": "model",
                                                              "classes": report["classes"], "device": report["device"]},
                        protocol, benchmark="classify", config={"data": report["data"], "format": report["format"]},
                        elapsed_s=report["elapsed_s"], details=report)
    table = Table("videos", "views", "top1", f"top{k5}", box=None)
    table.add_row(str(report["videos"]), f"{proto.get('clips', 1)}x{proto.get('crops', 1)}", f"{scores['top1']:.2f}",
                  f"{scores[f'top{k5}']:.2f}")
    stderr.print(table)
    log(f"wrote {out_dir / 'results.json'} and {out_dir / 'samples.jsonl'}")
    if as_json:
        out(doc)
    return doc
