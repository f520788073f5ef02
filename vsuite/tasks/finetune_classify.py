"""`vsuite finetune RECIPE` with `[task] kind = "classify"`: train a video classifier (LVT) on a labelled list.

Recipe tables:
  [task]   kind = "classify"
  [model]  vsuite.models.video_classifier.ClassifyModelConfig: model_type (default "lvt") + [model.config]
           (fields of its config class), or `init` = a folder / Hub id / official LVT checkpoint file to start
           from (its head is replaced when the class count differs). num_labels, id2label and
           label2id always come from the training list (names, a label map, or ids "0".."C-1").
  [data]   vsuite.data.video_classification.VideoClassificationDataConfig (lists, sampling, augmentation).
  [train]  vsuite.train.TrainConfig (the shared trainer: AdamW, warmup + cosine, checkpoints, resume).
  [eval]   vsuite.metrics.topk.ClassifyEvalConfig: views and size of the held-out check on data.val (top-1 /
           top-5 by vsuite.metrics.topk, every train.eval_every steps and at the end).

Every checkpoint (OUT/checkpoints/step-XXXXXXXX) is a Hugging Face folder plus
video_preprocessor_config.json (the frame sampling and crops the model was trained with), so
`vsuite classify --model` and `vsuite eval classify --model` use the same protocol. The final checkpoint's
path goes to stdout; everything else to stderr.
"""

from __future__ import annotations

import sys

from ..console import log
from ..errors import RecipeError
from ..models.video_classifier import ClassifyModelConfig


def build_model(cfg: ClassifyModelConfig, classes: list[str], seed: int):
    """A float32 video classifier with the list's classes: from `init`, or new from [model.config]."""
    import torch
    from transformers import AutoConfig, AutoModelForVideoClassification

    from ..train import seed_everything

    id2label = {i: name for i, name in enumerate(classes)}
    label2id = {name: i for i, name in id2label.items()}
    seed_everything(seed)
    if cfg.init:
        from ..models.video_classifier import load_for_finetune

        return load_for_finetune(cfg.init, id2label, label2id)
    try:
        config = AutoConfig.for_model(cfg.model_type, **cfg.config, id2label=id2label, label2id=label2id)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"[model] config: {err}") from None
    return AutoModelForVideoClassification.from_config(config, dtype=torch.float32)


def make_eval_fn(recipe, pre, label2id: dict[str, int], env):
    """Top-1 / top-5 on data.val (vsuite.metrics.topk: softmax averaged over the views), sharded over the ranks."""
    import torch
    import torch.distributed as dist

    from ..data import data_roots
    from ..data.video_classification import load_views, read_video_list, resolve_data_path
    from ..metrics.topk import average_views, topk_hits
    from ..models.video_classifier import view_probabilities

    data, ev = recipe.data, recipe.eval
    roots = data_roots()
    root = resolve_data_path(data.root, roots) if data.root else None
    videos = read_video_list(resolve_data_path(data.val, roots), root, label2id=label2id)
    items = videos.items[: ev.max_videos] if ev.max_videos else videos.items
    mine = items[env.rank::env.world_size]

    def evaluate(model, step: int) -> dict:
        probs = [average_views(view_probabilities(model, load_views(item.path, pre, ev.clips, ev.crops,
                                                                    backend=data.video_backend)[0], env.device))
                 for item in mine]
        counts = torch.zeros(3, dtype=torch.float64, device=env.device)  # [top-1 hits, top-5 hits, videos]
        if probs:
            hits = topk_hits(torch.stack(probs), [item.label for item in mine], ks=(1, 5))
            counts += torch.tensor([hits[1], hits[5], len(mine)], dtype=torch.float64, device=env.device)
        if env.distributed:
            dist.all_reduce(counts)
        return {"top1": float(counts[0] / counts[2]), "top5": float(counts[1] / counts[2])}

    return evaluate


def run(recipe, *, resume: str = "auto"):
    """Train as the recipe says; returns the trainer's TrainResult."""
    from ..data import data_roots
    from ..data.video_classification import VideoClipBatches, read_video_list, resolve_data_path
    from ..train import distributed as D
    from ..train import fit
    from ..train.config import run_folder

    train, data = recipe.train, recipe.data
    if not data.train:
        raise RecipeError(f"{recipe.source}: data.train is empty; give the training list (CSV, `path label` lines "
                          "or SSv2 JSON)")
    out_dir = run_folder(train, recipe.source)
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
                log(result.done_line(f"metrics in {out_dir / 'metrics.jsonl'}"))
            if result.checkpoint is not None:
                sys.stdout.write(f"{result.checkpoint}\n")
                sys.stdout.flush()
        return result
    finally:
        D.shutdown()
