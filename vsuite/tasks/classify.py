"""`vsuite classify VIDEO... --model M`: action recognition with a video classifier (LVT).

Each video is decoded into clips x crops views with the protocol the model was trained with (the checkpoint's
video_preprocessor_config.json, else defaults from its config), the softmax is averaged over the views and
the top-k classes are printed. With --json: one JSON document on stdout with the predictions and, per video,
the sampling record (frame indices, timestamps, fps, backend, resolution) of every clip.

A video that cannot be read does not stop the batch: its error is reported on stderr at once (and, with
--json, as an entry {"video", "error", "exit_code"}), the other videos are classified and printed, and the
command ends with a one-line summary and the exit code of the first failure (5 for bad media). Every video
is probed before the model loads, so a batch of only bad files fails fast; a missing model exits 4.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..console import error, log, out
from ..errors import DataError, UsageError, VsuiteError


def _probe(video: str) -> VsuiteError | None:
    """None when the video opens, else the error to report for it."""
    from ..media import probe

    try:
        probe(video)
    except VsuiteError as err:
        return err
    except (OSError, RuntimeError, ValueError) as err:  # a decoder's own exception: bad media
        return DataError(f"cannot read {video}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    return None


def _views(video: str, pre, clips: int, crops: int, backend: str):
    """(views, record), or raise a VsuiteError (DataError for a decoder's own exception)."""
    from ..data.video_classification import load_views

    try:
        return load_views(video, pre, clips, crops, backend=backend)
    except VsuiteError:
        raise
    except (OSError, RuntimeError, ValueError) as err:
        raise DataError(f"cannot decode {video}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
                        ) from None


def run(videos: list[str], *, model: str, top_k: int = 5, as_json: bool = False, clips: int = 1, crops: int = 1,
        backend: str = "auto", device: str = "auto") -> dict:
    if not videos:
        raise UsageError("give at least one video file")
    if top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {top_k}")
    from ..data.video_classification import VideoPreprocess, check_views, protocol
    from ..devices import resolve_device
    from ..media import resolve_backend
    from ..metrics.topk import average_views, top_classes
    from ..models.video_classifier import label_name, load_classifier, model_folder, view_probabilities

    check_views(clips, crops)
    try:
        resolve_backend(backend)
    except ValueError as err:
        raise UsageError(str(err)) from None
    folder = model_folder(model)
    dev = resolve_device(device)
    errors: dict[int, VsuiteError] = {}
    for i, video in enumerate(videos):  # bad media are reported before any model work
        err = _probe(video)
        if err is not None:
            _report(videos, i, err, errors)
    if len(errors) == len(videos):
        _fail(videos, errors)
    net = load_classifier(folder, dev)
    pre = VideoPreprocess.for_model(folder if folder.is_dir() else None, net.config)

    log(f"model {folder} ({type(net).__name__}, {net.config.num_labels} classes) on {dev} | {pre.num_frames} frames, "
        f"{pre.sampling} sampling, {clips} clip(s) x {crops} crop(s)")
    results = []
    for i, video in enumerate(videos):
        if i not in errors:
            try:
                views, record = _views(video, pre, clips, crops, backend)
            except VsuiteError as err:
                _report(videos, i, err, errors)
        if i in errors:
            results.append({"video": str(video), "error": str(errors[i]), "exit_code": errors[i].exit_code})
            continue
        probs = average_views(view_probabilities(net, views, dev))  # [classes]
        preds = [{"rank": r + 1, "label": label_name(net.config, c), "id": c, "probability": float(probs[c])}
                 for r, c in enumerate(top_classes(probs, top_k))]
        results.append({"video": str(video), "predictions": preds, "sampling": record})
    report = {"model": str(folder), "model_type": net.config.model_type, "device": str(dev),
              "protocol": protocol(pre, clips, crops, backend), "videos": results}
    if as_json:
        out(report)
    else:
        _print([r for r in results if "error" not in r])
    if errors:
        _fail(videos, errors)
    return report


def _report(videos: list[str], i: int, err: VsuiteError, errors: dict[int, VsuiteError]) -> None:
    """Remember a video's failure; in a batch, say so on stderr at once (one video: the error is raised)."""
    errors[i] = err
    if len(videos) > 1:
        error(f"{videos[i]}: {err}")


def _fail(videos: list[str], errors: dict[int, VsuiteError]) -> None:
    """Raise the first failure's error type (its exit code) with a summary of the batch."""
    first = errors[min(errors)]
    failed = ", ".join(str(videos[i]) for i in sorted(errors))
    if len(videos) == 1:
        raise first
    raise type(first)(f"{len(errors)} of {len(videos)} videos could not be classified: {failed}")


def _print(results: list[dict]) -> None:
    if not results:
        return
    lines = []
    for res in results:
        lines.append(f"{Path(res['video'])}")
        width = max(len(p["label"]) for p in res["predictions"])
        for p in res["predictions"]:
            lines.append(f"  {p['rank']:>2}  {p['label']:<{width}}  {p['probability']:.4f}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
