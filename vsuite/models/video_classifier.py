"""Video classifiers (LVT) as `vsuite classify`, `vsuite eval classify` and the classification finetune
load them, and the [model] table of a classification finetune recipe.

A model reference is a model folder (config.json + safetensors), a run folder (its newest complete
checkpoint), a Hub id, or a FILE: an official LVT checkpoint, converted on load by
vsuite.models.lvt.official.load_official_checkpoint. Models load in float32 through transformers' Auto
classes after vsuite's model types are registered (never trust_remote_code).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ModelNotFoundError
from ..hub import quiet_loading
from .config_fields import check_config_fields, config_class


class ClassifyModelConfig(BaseModel):
    """The [model] table of a classification finetune recipe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_type: str = "lvt"
    init: str = ""  # start from these weights (folder, Hub id or official checkpoint file), not a random init
    config: dict[str, Any] = Field(default_factory=dict, description="fields of the model's config class")

    @model_validator(mode="after")
    def _known_fields(self) -> ClassifyModelConfig:
        if self.init and self.config:
            raise ValueError("give either init (start from weights) or [model.config] (a new model), not both")
        cls = config_class(self.model_type)
        if cls is None:
            raise ValueError(f"model_type {self.model_type!r} is not registered (vsuite.models has: lvt)")
        labels = sorted({"num_labels", "id2label", "label2id"} & set(self.config))
        if labels:
            raise ValueError(f"{', '.join(labels)} come from the training list; remove them from [model.config]")
        check_config_fields(cls, self.model_type, self.config)
        return self


def model_folder(ref: str) -> Path:
    """A model folder, a run folder (its newest complete checkpoint), a Hub id -> a local model folder; an
    existing file is returned as it is (an official checkpoint). ModelNotFoundError (exit 4) otherwise."""
    from ..hub import weight_files
    from ..train.checkpoint import model_or_run_folder

    path = Path(ref).expanduser()
    if path.is_file():
        return path
    folder = model_or_run_folder(ref)
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{ref}: no config.json in {folder}; pass a model folder saved by vsuite finetune "
                                 "(e.g. RUN/checkpoints/step-XXXXXXXX) or an official checkpoint file")
    weight_files(folder)  # raises ModelNotFoundError when there are no weights
    return folder


def load_official(path: Path):
    """An official LVT checkpoint file -> LVTForVideoClassification (float32), via vsuite.models.lvt.official."""
    from .lvt.official import load_official_checkpoint

    return load_official_checkpoint(path).float()


def load_classifier(ref: Path, device):
    """A video classifier from a model folder or an official checkpoint file: float32, eval mode, on `device`."""
    import torch
    from transformers import AutoConfig, AutoModelForVideoClassification

    from . import lvt  # noqa: F401  (registers model_type "lvt")

    quiet_loading()
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # denormal activations are ~100x slower on x86 CPUs
    ref = Path(ref)
    if ref.is_file():
        return load_official(ref).to(device).eval()
    try:
        config = AutoConfig.from_pretrained(ref)
    except (ValueError, KeyError, OSError) as err:
        raise ModelNotFoundError(f"{ref}: not a model config vsuite knows ({str(err).splitlines()[0]})") from None
    try:
        model = AutoModelForVideoClassification.from_pretrained(ref, dtype=torch.float32)
    except ValueError as err:
        raise ModelNotFoundError(f"{ref}: {config.model_type!r} is not a video classifier "
                                 f"({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise ModelNotFoundError(f"{ref}: cannot load the weights ({str(err).splitlines()[0]})") from None
    return model.to(device).eval()


def load_for_finetune(ref: str, id2label: dict[int, str], label2id: dict[str, int]):
    """Starting weights for a finetune with these classes (float32): the head is replaced (newly initialised)
    when the class count differs, every other weight is kept."""
    import torch
    from transformers import AutoModelForVideoClassification

    from . import lvt  # noqa: F401

    quiet_loading()
    path = model_folder(ref)
    if not path.is_file():
        return AutoModelForVideoClassification.from_pretrained(
            path, dtype=torch.float32, id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True)
    source = load_official(path)
    config = copy.deepcopy(source.config)
    config.id2label, config.label2id = dict(id2label), dict(label2id)
    config.num_labels = len(id2label)
    model = AutoModelForVideoClassification.from_config(config, dtype=torch.float32)
    own = model.state_dict()
    kept = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(kept, strict=False)
    return model


def view_probabilities(model, views, device, max_views: int = 0):
    """Softmax over classes of every view: views [V, T, C, H, W] -> [V, classes] (float32, CPU).

    `max_views` bounds the views per forward pass (memory); 0 = all at once."""
    import torch

    chunk = max_views or views.shape[0]
    with torch.no_grad():
        probs = [torch.softmax(model(pixel_values=views[i:i + chunk].to(device)).logits.float(), dim=-1)
                 for i in range(0, views.shape[0], chunk)]
    return torch.cat(probs).cpu()


def label_name(config, index: int) -> str:
    id2label = getattr(config, "id2label", None) or {}
    return str(id2label.get(index, id2label.get(str(index), index)))
