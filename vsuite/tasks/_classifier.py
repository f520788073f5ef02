"""Helpers shared by `vsuite classify`, `vsuite eval classify` and the classification finetune: load a video
classifier from a folder or Hub id, pick the device, turn a video into averaged class probabilities.
Not a command of its own."""

from __future__ import annotations

from pathlib import Path

from ..errors import DeviceError, ModelNotFoundError, UsageError


def resolve_device(spec: str):
    """auto | cpu | cuda | cuda:N -> torch.device; DeviceError when CUDA is asked for and absent."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec}: CUDA is not available here; use --device cpu or auto")
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise UsageError(f"--device {spec!r} is not a device (auto, cpu, cuda or cuda:N)") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    if spec != "cpu":
        raise UsageError(f"--device {spec!r} is not a device (auto, cpu, cuda or cuda:N)")
    return torch.device("cpu")


def model_folder(ref: str) -> Path:
    """A model folder, a run folder (its newest complete checkpoint) or a Hub id -> a local model folder
    (ModelNotFoundError, exit 4, when absent or not a model)."""
    from ..hub import resolve_model_dir, weight_files
    from ..train.checkpoint import checkpoints_dir, newest_complete

    path = Path(ref).expanduser()
    if path.is_dir() and not (path / "config.json").exists() and checkpoints_dir(path).is_dir():
        folder = newest_complete(path)
        if folder is None:
            raise ModelNotFoundError(f"{path} is a run folder without a complete checkpoint")
    else:
        folder = resolve_model_dir(ref)
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{ref}: no config.json in {folder}; pass a model folder saved by vsuite finetune "
                                 "(e.g. RUN/checkpoints/step-XXXXXXXX)")
    weight_files(folder)  # raises ModelNotFoundError when there are no weights
    return folder


def load_classifier(folder: Path, device):
    """AutoModelForVideoClassification from a folder, float32, eval mode, on `device`; and its preprocessing."""
    import torch
    from transformers import AutoConfig, AutoModelForVideoClassification

    import vsuite.models  # noqa: F401  (registers model_type "lvt")

    from ..data.video_classification import VideoPreprocess

    quiet_loading()
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # denormal activations are ~100x slower on x86 CPUs

    try:
        config = AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError, OSError) as err:
        raise ModelNotFoundError(f"{folder}: not a model config vsuite knows ({str(err).splitlines()[0]})") from None
    try:
        model = AutoModelForVideoClassification.from_pretrained(folder, dtype=torch.float32)
    except ValueError as err:
        raise ModelNotFoundError(f"{folder}: {config.model_type!r} is not a video classifier "
                                 f"({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise ModelNotFoundError(f"{folder}: cannot load the weights ({str(err).splitlines()[0]})") from None
    return model.to(device).eval(), VideoPreprocess.for_model(folder, model.config)


def video_probabilities(model, views, device, max_views: int = 0):
    """Softmax over classes, averaged over the views [V, T, C, H, W] -> [classes] (float32, CPU)."""
    import torch

    chunk = max_views or views.shape[0]
    with torch.no_grad():
        probs = [torch.softmax(model(pixel_values=views[i:i + chunk].to(device)).logits.float(), dim=-1)
                 for i in range(0, views.shape[0], chunk)]
    return torch.cat(probs).mean(dim=0).cpu()


def label_name(config, index: int) -> str:
    id2label = getattr(config, "id2label", None) or {}
    return str(id2label.get(index, id2label.get(str(index), index)))


def check_views(clips: int, crops: int) -> None:
    if clips < 1 or crops < 1:
        raise UsageError(f"--clips and --crops must be >= 1, got {clips} and {crops}")


def quiet_loading() -> None:
    """No "Loading weights" progress bar from transformers on stderr (vsuite prints its own lines)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
