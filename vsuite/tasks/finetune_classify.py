"""`vsuite finetune RECIPE` with `[task] kind = "classify"`: train a video classifier (LVT) on a labelled list.

Recipe tables:
  [task]   kind = "classify"
  [model]  model_type (default "lvt") + [model.config] (fields of its config class), or `init` = a folder /
           Hub id to start from (its head is replaced when the class count differs). num_labels, id2label and
           label2id always come from the training list (names, a label map, or ids "0".."C-1").
  [data]   vsuite.data.video_classification.VideoClassificationDataConfig (lists, sampling, augmentation).
  [train]  vsuite.train.TrainConfig (the shared trainer: AdamW, warmup + cosine, checkpoints, resume).
  [eval]   views and size of the held-out check on data.val (top-1 / top-5 every train.eval_every steps and
           at the end).

Every checkpoint (OUT/checkpoints/step-XXXXXXXX) is a Hugging Face folder plus
video_preprocessor_config.json (the frame sampling and crops the model was trained with), so
`vsuite classify --model` and `vsuite eval classify --model` use the same protocol. The final checkpoint's
path goes to stdout; everything else to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..console import log
from ..errors import RecipeError
from ..models.config_fields import check_config_fields, config_class


class ClassifyModelConfig(BaseModel):
    """The [model] table of a classification finetune recipe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_type: str = "lvt"
    init: str = ""  # start from these weights (folder or Hub id) instead of a random init
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


class ClassifyEvalConfig(BaseModel):
    """The [eval] table: the held-out check on data.val during training."""

    model_config = ConfigDict(extra="forbid", strict=True)

    clips: int = Field(1, ge=1)
    crops: int = Field(1, ge=1)
    max_videos: int = Field(0, ge=0, description="score at most this many videos of data.val; 0 = all")


def data_roots() -> list[Path]:
    """Relative data paths: the working directory first, then the vsuite checkout."""
    from ..recipes import recipes_dir

    return [Path.cwd(), recipes_dir().parent]


def build_model(cfg: ClassifyModelConfig, classes: list[str], seed: int):
    """A float32 video classifier with the list's classes: from `init`, or new from [model.config]."""
    import torch
    from transformers import AutoConfig, AutoModelForVideoClassification

    from ..train import seed_everything

    id2label = {i: name for i, name in enumerate(classes)}
    label2id = {name: i for i, name in id2label.items()}
    seed_everything(seed)
    if cfg.init:
        from ._classifier import model_folder, quiet_loading

        quiet_loading()

        return AutoModelForVideoClassification.from_pretrained(
            model_folder(cfg.init), dtype=torch.float32, id2label=id2label, label2id=label2id,
            ignore_mismatched_sizes=True)
    try:
        config = AutoConfig.for_model(cfg.model_type, **cfg.config, id2label=id2label, label2id=label2id)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"[model] config: {err}") from None
    return AutoModelForVideoClassification.from_config(config, dtype=torch.float32)


def make_eval_fn(recipe, pre, label2id: dict[str, int], env):
    """Top-1 / top-5 on data.val (multi-view, softmax averaged), sharded over the ranks."""
    import torch
    import torch.distributed as dist

    from ..data.video_classification import load_views, read_video_list, resolve_data_path
    from ._classifier import video_probabilities

    data, ev = recipe.data, recipe.eval
    roots = data_roots()
    root = resolve_data_path(data.root, roots) if data.root else None
    videos = read_video_list(resolve_data_path(data.val, roots), root, label2id=label2id)
    items = videos.items[: ev.max_videos] if ev.max_videos else videos.items
    mine = items[env.rank::env.world_size]
    k5 = min(5, len(label2id))

    def evaluate(model, step: int) -> dict:
        counts = torch.zeros(3, dtype=torch.float64, device=env.device)
        for item in mine:
            views, _ = load_views(item.path, pre, ev.clips, ev.crops, backend=data.video_backend)
            top = video_probabilities(model, views, env.device).topk(k5).indices.tolist()
            counts += torch.tensor([top[0] == item.label, item.label in top, 1.0], dtype=torch.float64,
                                   device=env.device)
        if env.distributed:
            dist.all_reduce(counts)
        return {"top1": float(counts[0] / counts[2]), "top5": float(counts[1] / counts[2])}

    return evaluate


def run(recipe, *, resume: str = "auto"):
    """Train as the recipe says; returns the trainer's TrainResult."""
    from ..data.video_classification import VideoClipBatches, read_video_list, resolve_data_path
    from ..train import distributed as D
    from ..train import fit

    train, data = recipe.train, recipe.data
    if not data.train:
        raise RecipeError(f"{recipe.source}: data.train is empty; give the training list (CSV, `path label` lines "
                          "or SSv2 JSON)")
    out_dir = Path(train.out_dir or Path("runs") / Path(recipe.source).stem)
    env = D.init(train.device)
    try:
        roots = data_roots()
        root = resolve_data_path(data.root, roots) if data.root else None
        videos = read_video_list(resolve_data_path(data.train, roots), root,
                                 labels=resolve_data_path(data.labels, roots) if data.labels else None)
        classes = videos.class_names()
        if len(classes) < 2:
            raise RecipeError(f"{data.train} has {len(classes)} class(es); a classifier needs at least 2")
        model = build_model(recipe.model, classes, train.seed)
        mc = model.config
        pre = data.preprocess(mc.num_frames, list(mc.image_mean), list(mc.image_std))
        if pre.num_frames != mc.num_frames:
            raise RecipeError(f"data.num_frames={data.num_frames} but the model takes {mc.num_frames} frames; set "
                              "them equal (or data.num_frames = 0 to follow the model)")
        batches = VideoClipBatches(videos, pre, data, num_classes=len(classes), rank=env.rank,
                                   world_size=env.world_size)
        eval_fn = make_eval_fn(recipe, pre, mc.label2id, env) if data.val else None
        if env.is_main:
            params = sum(p.numel() for p in model.parameters())
            log(f"model {type(model).__name__}: {params / 1e6:.2f}M parameters, {len(classes)} classes | "
                f"{len(videos.items)} training videos ({videos.format}), {batches.batches_per_epoch} batches of "
                f"{data.batch_size} per epoch per rank | {pre.num_frames} frames, {pre.sampling} sampling, crop "
                f"{pre.crop_size} | {env.world_size} process(es) on {env.device.type} | run folder {out_dir}")
        result = fit(train, model, batches, recipe, out_dir=out_dir, resume=resume, env=env, eval_fn=eval_fn,
                     save_extra=pre.save)
        if env.is_main:
            if result.losses:
                log(f"done: step {result.step}, loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f} in "
                    f"{result.elapsed:.1f}s; metrics in {out_dir / 'metrics.jsonl'}")
            if result.checkpoint is not None:
                sys.stdout.write(f"{result.checkpoint}\n")
                sys.stdout.flush()
        return result
    finally:
        D.shutdown()
