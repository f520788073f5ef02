"""Scene detection in one streaming pass, after PySceneDetect (what Vript split its videos with).

- Content cuts (ContentDetector): frames are downscaled (integer factor, width ~256 px at
  most) and converted to HSV on OpenCV's 8-bit scale (H in [0, 180), S and V in [0, 255]);
  the score of frame i is the mean over H, S and V of the mean absolute difference to frame
  i - 1. A cut starts a new scene at i when the score >= `threshold` (27) and the last cut
  is at least `min_scene_len` (15) frames back.
- Fades (ThresholdDetector): a frame is dark when its mean RGB value < `fade_threshold`
  (12). A run of dark frames between two bright ones is one transition, split at its middle
  (fade_bias 0). Content cuts touching a dark frame are left to the fade rule. Dark runs at
  the very start or end of the video do not split.

Scenes are half-open frame ranges [start, end) with times start / fps and end / fps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Scene:
    start_frame: int
    end_frame: int  # exclusive
    start_time: float
    end_time: float  # = end_frame / fps

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rgb_to_hsv(frames: torch.Tensor) -> torch.Tensor:
    """[..., 3] RGB in 0..255 -> [..., 3] float HSV on OpenCV's 8-bit scale (H in [0, 180))."""
    import torch

    rgb = frames.to(torch.float32)
    r, g, b = rgb.unbind(-1)
    v, _ = rgb.max(dim=-1)
    delta = v - rgb.min(dim=-1).values
    s = torch.where(v > 0, 255.0 * delta / v.clamp(min=1e-6), torch.zeros_like(v))
    safe = delta.clamp(min=1e-6)
    h = torch.where(v == r, (g - b) / safe, torch.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = torch.where(delta > 0, (h * 30.0) % 180.0, torch.zeros_like(h))
    return torch.stack([h, s, v], dim=-1)


class SceneDetector:
    """Feed frames in order (`push`), then `cuts()` gives the first frame of every scene after
    the first. Keeps only the previous frame's HSV, so memory does not grow with the video."""

    def __init__(self, threshold: float = 27.0, min_scene_len: int = 15, fade_threshold: float = 12.0,
                 detect_fades: bool = True, max_width: int = 256) -> None:
        self.threshold, self.min_scene_len = threshold, min_scene_len
        self.fade_threshold, self.detect_fades, self.max_width = fade_threshold, detect_fades, max_width
        self.scores: list[float] = []  # content score per frame (0 for the first), for inspection
        self._cuts: list[int] = []
        self._prev_hsv = None
        self._prev_dark = False
        self._seen_bright = False
        self._dark_start: int | None = None
        self._count = 0

    def push(self, frames: torch.Tensor) -> None:
        """Frames [H, W, 3] or [B, H, W, 3] uint8 RGB, continuing from the last push."""
        import torch

        batch = frames[None] if frames.ndim == 3 else frames
        small = _downscale(batch, self.max_width)
        hsv = rgb_to_hsv(small)
        means = small.to(torch.float32).mean(dim=(1, 2, 3)).tolist()
        for k in range(hsv.shape[0]):
            score = 0.0 if self._prev_hsv is None else float((hsv[k] - self._prev_hsv).abs().mean(dim=(0, 1)).mean())
            self._step(self._count, score, means[k] < self.fade_threshold)
            self._prev_hsv = hsv[k]
            self._count += 1

    def _step(self, i: int, score: float, dark: bool) -> None:
        self.scores.append(score)
        if self.detect_fades and dark:
            if not self._prev_dark and self._seen_bright:
                self._dark_start = i
        elif self.detect_fades and self._prev_dark:
            if self._dark_start is not None:
                self._add((self._dark_start + i) // 2)
            self._dark_start = None
        elif i > 0 and score >= self.threshold:
            self._add(i)
        self._seen_bright |= not dark
        self._prev_dark = dark

    def _add(self, cut: int) -> None:
        last = self._cuts[-1] if self._cuts else 0
        if cut - last >= self.min_scene_len:
            self._cuts.append(cut)

    @property
    def num_frames(self) -> int:
        return self._count

    def cuts(self) -> list[int]:
        return list(self._cuts)


def _downscale(frames: torch.Tensor, max_width: int) -> torch.Tensor:
    """Average-pool by the integer factor width // max_width (PySceneDetect's auto downscale)."""
    import torch

    factor = max(1, frames.shape[2] // max_width)
    if factor == 1:
        return frames
    x = frames.permute(0, 3, 1, 2).to(torch.float32)
    return torch.nn.functional.avg_pool2d(x, factor).permute(0, 2, 3, 1)


def scenes_from_cuts(cuts: list[int], num_frames: int, fps: float) -> list[Scene]:
    """Half-open scenes [0, c1), [c1, c2), ..., [ck, num_frames)."""
    if num_frames < 1:
        return []
    bounds = [0, *[c for c in cuts if 0 < c < num_frames], num_frames]
    return [Scene(a, b, a / fps, b / fps) for a, b in zip(bounds[:-1], bounds[1:])]


def detect_scenes(path: str | Path, *, threshold: float = 27.0, min_scene_len: int = 15, fade_threshold: float = 12.0,
                  detect_fades: bool = True, max_width: int = 256, backend: str = "auto",
                  batch_size: int = 32) -> list[Scene]:
    """Stream the video once and split it into scenes (content cuts + fades to/from black)."""
    from .decode import iter_frames
    from .probe import probe

    info = probe(path)
    detector = SceneDetector(threshold, min_scene_len, fade_threshold, detect_fades, max_width)
    for _, _, batch in iter_frames(path, batch_size=batch_size, backend=backend):
        detector.push(batch)
    if detector.num_frames == 0:
        raise errors.empty_video(path)
    return scenes_from_cuts(detector.cuts(), detector.num_frames, info.fps)
