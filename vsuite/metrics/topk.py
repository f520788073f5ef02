"""Top-k accuracy of video classification (Kinetics-style multi-view testing), shared by `vsuite eval
classify` and the held-out check of the classification finetune.

A video's class probabilities are the softmax averaged over its views (clips x crops). The video counts
for top-k when its label ranks among the k most probable classes. Ties are ranked by class index (a
stable descending sort: of two classes with equal probability the lower id comes first), so a score
never depends on the order a kernel happens to return; k larger than the number of classes counts every
video. All functions are pure: tensors in, numbers out.

Also the [eval] table of a classification finetune (ClassifyEvalConfig).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClassifyEvalConfig(BaseModel):
    """The [eval] table of a classification finetune: the held-out check on data.val."""

    model_config = ConfigDict(extra="forbid", strict=True)

    clips: int = Field(1, ge=1)
    crops: int = Field(1, ge=1)
    max_videos: int = Field(0, ge=0, description="score at most this many videos of data.val; 0 = all")


def average_views(view_probs):
    """Per-view class probabilities [V, C] -> the video's probabilities [C] (float32, mean over views)."""
    if view_probs.dim() != 2 or view_probs.shape[0] < 1:
        raise ValueError(f"expected view probabilities [V, C] with V >= 1, got shape {tuple(view_probs.shape)}")
    return view_probs.float().mean(dim=0)


def ranking(probs):
    """Class ids from most to least probable, ties by lower id first. probs [C] or [N, C] -> same shape (long)."""
    import torch

    return torch.sort(probs, dim=-1, descending=True, stable=True).indices


def top_classes(probs, k: int) -> list[int]:
    """The min(k, C) most probable class ids of one video's probabilities [C], in rank order."""
    return ranking(probs)[: max(0, k)].tolist()


def label_ranks(probs, labels):
    """0-based rank of each video's label. probs [N, C], labels [N] -> [N] (long)."""
    import torch

    labels = torch.as_tensor(labels, dtype=torch.long, device=probs.device)
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"expected probabilities [N, C] and labels [N], got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")
    return (ranking(probs) == labels[:, None]).long().argmax(dim=-1)


def topk_hits(probs, labels, ks=(1, 5)) -> dict[int, int]:
    """k -> number of videos whose label is among their k most probable classes."""
    ranks = label_ranks(probs, labels)
    return {k: int((ranks < k).sum()) for k in ks}


def topk_accuracy(probs, labels, ks=(1, 5)) -> dict[str, float]:
    """{"top1": ..., "top5": ...}: the fraction of videos (rows of probs [N, C]) with a top-k hit."""
    n = probs.shape[0]
    if n < 1:
        raise ValueError("top-k accuracy needs at least one video")
    return {f"top{k}": hits / n for k, hits in topk_hits(probs, labels, ks).items()}
