"""`vsuite eval avsbench --split s4|ms3 --model M --data DIR`: AVSBench-object mIoU and F-measure.

Every clip of the subset (default test) is segmented (5 frames with their 5 log-mel examples, the model's
image_size) and scored with vsuite.metrics.avs, the official definitions:
  miou         the official mIoU: per-frame IoU (sigmoid > 0.5, empty ground truth scored as the fraction of
               pixels correctly left empty), averaged per test batch, then over batches
  f_official   the official F-measure (beta^2 = 0.3, 255 thresholds): per test batch, the maximum over thresholds
               of the batch's mean curve, then averaged over batches; it depends on the test batch size, so it
               is computed at the official one (AVSBench's test.sh: 4 clips = 20 frames; --batch-size changes it,
               1 reproduces the AVS-bidirectional test.py)
  f_per_frame  the same F with every frame of the subset in one batch: one threshold for the whole subset, the
               number that does not depend on any batch size
  miou_per_frame  the mean IoU over all frames (equals miou unless the last batch is short)
S4 training clips have one annotated frame; only annotated frames are scored. OUT gets results.json +
samples.jsonl (vsuite.metrics.results: one line per clip with its per-frame IoU), the table goes to stderr,
--json prints results.json.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..console import Progress, log

OFFICIAL_TEST_CLIPS = 4  # AVSBench avs_scripts/*/test.sh: --test_batch_size 4


def run(*, split: str, model: str, data: str, subset: str = "test", batch_size: int | None = None,
        audio: str = "auto", limit: int = 0, device: str = "auto", out: Path | None = None,
        as_json: bool = False) -> dict:
    """Score, write OUT/results.json + samples.jsonl, print the table; returns results.json's document."""
    import torch

    from ..data.avsbench import NUM_FRAMES, AVSBenchDataset, collate
    from ..devices import resolve_device
    from ..metrics.avs import AVSMeter, frame_ious

    AVSBenchDataset(Path(data), split, subset, audio=audio, check_files=False)  # the layout: exit 5 first
    from ..models.segmenter import load_segmenter, model_folder  # (imports every model family: seconds)

    folder = model_folder(model)
    dev = resolve_device(device)
    net = load_segmenter(folder, dev)
    size = int(net.config.image_size)
    dataset = AVSBenchDataset(Path(data), split, subset, image_size=size, audio=audio)  # files checked here
    clips = batch_size or OFFICIAL_TEST_CLIPS
    count = min(limit, len(dataset)) if limit else len(dataset)
    if getattr(net.config, "setting", split) != split:
        log(f"note: the model was trained for {net.config.setting}, scored here on {split}")
    log(f"model {folder} on {dev} | AVSBench {split} {subset}: {count} clips at {size}px, audio {audio} | "
        f"F official over batches of {clips} clip(s)")
    meter = AVSMeter(official_batch_frames=clips * NUM_FRAMES)
    samples = []
    start = time.monotonic()
    with Progress("eval", count, every=max(1, count // 10)) as progress:
        for first in range(0, count, clips):
            batch = collate([dataset[i] for i in range(first, min(first + clips, count))])
            with torch.no_grad():
                logits = net(pixel_values=batch["pixel_values"].to(dev),
                             audio_log_mel=batch["audio_log_mel"].to(dev)).logits[:, :, 0].float().cpu()
            valid, gt = batch["mask_valid"], batch["masks"][:, :, 0]  # [B, T], [B, T, S, S]
            meter.update(logits[valid], gt[valid])
            for b, clip_id in enumerate(batch["id"]):
                ious = [round(float(x), 6) for x in frame_ious(logits[b][valid[b]], gt[b][valid[b]])]
                area = (torch.sigmoid(logits[b][valid[b]]) > 0.5).float().mean(dim=(1, 2))
                samples.append({"id": clip_id, "target": [round(float(x), 6) for x in gt[b][valid[b]].mean(dim=(1, 2))],
                                "response": [round(float(x), 6) for x in area],
                                "score": {"miou": round(sum(ious) / len(ious), 6)}, "frame_iou": ious})
                progress.advance()
    result = meter.result()
    report = {"model": str(folder), "data": str(Path(data).resolve()), "split": split, "subset": subset,
              "clips": count, "audio": audio, "image_size": size, "official_batch_clips": clips,
              "device": str(dev), "elapsed_s": round(time.monotonic() - start, 3), **result}
    return write_report(report, samples, out, as_json=as_json)


def write_report(report: dict, samples: list[dict], out_dir: Path | None, *, as_json: bool) -> dict:
    """OUT/results.json + samples.jsonl (vsuite.metrics.results), the table on stderr, --json on stdout."""
    import shlex

    from ..console import out
    from ..metrics.results import default_out, print_table, write_results

    split = report["split"]
    model = Path(report["model"])  # RUN/best is named by its run, as RUN/checkpoints/step-N is
    out_dir = Path(out_dir) if out_dir else default_out(f"avsbench-{split}", model.parent / "checkpoints" / model.name
                                                        if model.name == "best" else model, report["subset"])
    scores = {"miou": report["miou"], "f_official": report["f_official"], "f_per_frame": report["f_per_frame"],
              "miou_per_frame": report["miou_per_frame"]}
    command = shlex.join(["vsuite", "eval", "avsbench", "--split", split, "--model", report["model"], "--data",
                          report["data"], "--subset", report["subset"], "--batch-size",
                          str(report["official_batch_clips"]), "--audio", report["audio"], "--device",
                          report["device"], "--out", str(out_dir.resolve())])
    protocol = {"frames": 5, "fps": 1, "decoder": "png", "prompt_hash": None, "image_size": report["image_size"],
                "audio": report["audio"], "official_batch_frames": report["official_batch_frames"],
                "n_official_batches": report["n_official_batches"],
                "sampling": "AVSBench clips: the 5 released frames (one per second, at 15/16 of it) and the 5 "
                            "log-mel examples (0.96 s) paired with them"}
    doc = write_results(out_dir, scores, samples, command, {"name": report["model"], "source": "model",
                                                              "device": report["device"]},
                        protocol, benchmark=f"avsbench-{split}",
                        config={"split": split, "subset": report["subset"], "data": report["data"],
                                "batch_size": report["official_batch_clips"], "audio": report["audio"],
                                "limit": report["clips"]},
                        elapsed_s=report["elapsed_s"], details=report)
    print_table(f"avsbench-{split}", {"mIoU (%)": 100 * scores["miou"], "F official": f"{scores['f_official']:.4f}",
                                      "F per frame": f"{scores['f_per_frame']:.4f}", "frames": report["n_frames"]},
                note=f"({report['subset']}, F official over batches of {report['official_batch_clips']} clips)")
    log(f"wrote {out_dir / 'results.json'} and {out_dir / 'samples.jsonl'}")
    if as_json:
        out(doc)
    return doc
