"""AVSBench scores: mIoU (Jaccard) and F-measure exactly as the official utils/utility.py computes them.

mask_iou (one batch of N frames, official test.py batches = test_batch_size clips x 5 frames):
  pred = sigmoid(logits) > 0.5; per frame IoU = |P and G| / (|max(P, G)| + 1e-7); a frame whose GT is empty
  scores the fraction of pixels both leave empty: |not P and not G| / (H W + 1e-7). Batch value = mean over
  its N frames; the reported mIoU = the mean of the batch values (AverageMeter).
Eval_Fmeasure (one batch):
  probs = sigmoid(logits); 255 thresholds linspace(0, 1 - 1e-10, 255) in float32 (so the last one is 1.0);
  per frame with a non-empty GT: binarise probs >= th, precision tp / (|P| + 1e-20), recall tp / (|G| + 1e-20),
  F = 1.3 P R / (0.3 P + R) (beta^2 = 0.3), NaN -> 0; the batch value = max over thresholds of the mean curve
  of its frames (0 if every GT in the batch is empty); the reported F = the mean of the batch values.

Both depend on how frames are grouped into batches: F through the max of a *mean* curve (a per-batch
threshold), mIoU only through a short last batch (its mean counts as much as a full batch's). AVSMeter
therefore regroups the frames it is given, in order, into batches of `official_batch_frames` whatever the
caller's own batch size (test.sh: 4 clips = 20 frames), and also reports batch-free values:
  miou           mean of per-batch means at the official batch size (the official number)
  miou_per_frame mean IoU over all frames (equals miou when every batch is full)
  f_official     mean of per-batch max-F at the official batch size (the official number)
  f_per_frame    the same formula with the whole split as one batch: max over thresholds of the mean curve
                 of every frame with a non-empty GT (does not depend on any batch size)
Deviation: counts and F are accumulated in float64 (the official sums in float32, a ~1e-7 difference); ground
truth is binarised with > 0.5 (the official multiplies by the raw GT values, which are 0/1 for AVSBench masks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BETA2 = 0.3
NUM_THRESHOLDS = 255
IOU_EPS = 1e-7
PR_EPS = 1e-20


def _check(pred, gt, what: str):
    if pred.ndim != 3 or tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f"{what}: expected predictions and ground truth of the same shape [N, H, W], got "
                         f"{tuple(pred.shape)} and {tuple(gt.shape)}")


def _probs(pred, from_logits: bool):
    import torch

    pred = pred.detach().float()
    return torch.sigmoid(pred) if from_logits else pred


def frame_ious(pred: torch.Tensor, gt: torch.Tensor, *, from_logits: bool = True, eps: float = IOU_EPS) -> torch.Tensor:
    """float64 [N] per-frame IoU of pred [N, H, W] (logits, or probabilities with from_logits=False) vs gt {0, 1}."""
    import torch

    _check(pred, gt, "mask_iou")
    p = (_probs(pred, from_logits) > 0.5).double()  # [N, H, W]
    g = (gt.detach() > 0.5).double()
    inter = (p * g).sum(dim=(1, 2))
    union = torch.maximum(p, g).sum(dim=(1, 2))
    empty = g.sum(dim=(1, 2)) == 0  # no sounding object: score the pixels correctly left empty
    num_pixels = float(pred.shape[-1] * pred.shape[-2])
    inter = torch.where(empty, ((1 - p) * (1 - g)).sum(dim=(1, 2)), inter)
    union = torch.where(empty, torch.full_like(union, num_pixels), union)
    return inter / (union + eps)


def mask_iou(pred: torch.Tensor, gt: torch.Tensor, *, from_logits: bool = True, eps: float = IOU_EPS) -> float:
    """The official mask_iou of one batch: the mean over its N frames of `frame_ious`."""
    return float(frame_ious(pred, gt, from_logits=from_logits, eps=eps).mean())


def thresholds() -> torch.Tensor:
    """The official 255 thresholds, float32 linspace(0, 1 - 1e-10, 255) (the last one rounds to 1.0)."""
    import torch

    return torch.linspace(0, 1 - 1e-10, NUM_THRESHOLDS, dtype=torch.float32)


def f_curves(pred: torch.Tensor, gt: torch.Tensor, *, from_logits: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(float64 [N, 255] F curves, bool [N] has-object) for pred [N, H, W] vs gt; empty-GT rows are 0.

    tp and |P| at every threshold come from one histogram: a pixel with probability p is predicted
    at threshold i iff p >= th_i, i.e. for i < searchsorted(th, p, right=True)."""
    import torch

    _check(pred, gt, "F-measure")
    th = thresholds()
    probs = _probs(pred, from_logits).reshape(pred.shape[0], -1)  # [N, HW] float32, compared as the official
    g = (gt.detach().reshape(gt.shape[0], -1) > 0.5).double()
    count = torch.searchsorted(th, probs.contiguous(), right=True)  # [N, HW] in 0..255
    n = probs.shape[0]
    offsets = (torch.arange(n) * (NUM_THRESHOLDS + 1))[:, None]
    flat = (count + offsets).reshape(-1)
    size = n * (NUM_THRESHOLDS + 1)
    hist_all = torch.bincount(flat, minlength=size).double().reshape(n, -1)  # [N, 256]
    hist_tp = torch.bincount(flat, weights=g.reshape(-1), minlength=size).reshape(n, -1)
    # predicted at threshold i <=> count > i: reverse cumulative sums over count = i+1..255
    predicted = hist_all.flip(1).cumsum(1).flip(1)[:, 1:]  # [N, 255]
    tp = hist_tp.flip(1).cumsum(1).flip(1)[:, 1:]
    positives = g.sum(1, keepdim=True)  # [N, 1]
    precision = tp / (predicted + PR_EPS)
    recall = tp / (positives + PR_EPS)
    f = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
    f = torch.nan_to_num(f, nan=0.0)
    has_object = positives[:, 0] > 0
    return torch.where(has_object[:, None], f, torch.zeros_like(f)), has_object


def f_measure(pred: torch.Tensor, gt: torch.Tensor, *, from_logits: bool = True) -> float:
    """The official Eval_Fmeasure of one batch: max over thresholds of the mean curve of its frames with an object
    (0 when none has one)."""
    curves, valid = f_curves(pred, gt, from_logits=from_logits)
    return _batch_f(curves, valid)


def _batch_f(curves, valid) -> float:
    if not bool(valid.any()):
        return 0.0
    return float(curves[valid].mean(0).max())


@dataclass
class AVSMeter:
    """Accumulates frames in order and scores them at the official batch size and batch-free (module docstring).

    official_batch_frames: frames per official test batch (test.sh: 4 clips x 5 frames = 20; the code's default
    test_batch_size 1 gives 5). Frames are regrouped in the order given, so the caller's batch size is free."""

    official_batch_frames: int = 20
    from_logits: bool = True
    _ious: list = field(default_factory=list, init=False, repr=False)
    _curves: list = field(default_factory=list, init=False, repr=False)
    _valid: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        if self.official_batch_frames < 1:
            raise ValueError(f"official_batch_frames must be >= 1, got {self.official_batch_frames}")

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """pred [N, H, W] logits (or probabilities with from_logits=False), gt [N, H, W] {0, 1}.
        [N, 1, H, W] is accepted too."""
        if pred.ndim == 4 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if gt.ndim == 4 and gt.shape[1] == 1:
            gt = gt[:, 0]
        pred, gt = pred.detach().cpu(), gt.detach().cpu()
        self._ious.append(frame_ious(pred, gt, from_logits=self.from_logits))
        curves, valid = f_curves(pred, gt, from_logits=self.from_logits)
        self._curves.append(curves)
        self._valid.append(valid)

    @property
    def n_frames(self) -> int:
        return sum(int(x.shape[0]) for x in self._ious)

    def reset(self) -> None:
        self._ious.clear()
        self._curves.clear()
        self._valid.clear()

    def result(self) -> dict:
        """{miou, miou_per_frame, f_official, f_per_frame, n_frames, n_frames_with_object, official_batch_frames,
        n_official_batches}; scores are 0.0 with no frames."""
        import torch

        out = {"n_frames": self.n_frames, "official_batch_frames": self.official_batch_frames}
        if not self._ious:
            return {**out, "miou": 0.0, "miou_per_frame": 0.0, "f_official": 0.0, "f_per_frame": 0.0,
                    "n_frames_with_object": 0, "n_official_batches": 0}
        ious, curves, valid = torch.cat(self._ious), torch.cat(self._curves), torch.cat(self._valid)
        size = self.official_batch_frames
        starts = range(0, ious.shape[0], size)
        batch_iou = [float(ious[s:s + size].mean()) for s in starts]
        batch_f = [_batch_f(curves[s:s + size], valid[s:s + size]) for s in starts]
        return {**out,
                "miou": sum(batch_iou) / len(batch_iou),
                "miou_per_frame": float(ious.mean()),
                "f_official": sum(batch_f) / len(batch_f),
                "f_per_frame": _batch_f(curves, valid),
                "n_frames_with_object": int(valid.sum()),
                "n_official_batches": len(batch_iou)}


__all__ = ["AVSMeter", "BETA2", "NUM_THRESHOLDS", "f_curves", "f_measure", "frame_ious", "mask_iou", "thresholds"]
