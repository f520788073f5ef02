"""Frame-sampling protocols: pure index arithmetic, no decoding, no heavy imports.

Conventions (shared by every protocol and by the decoders):

- Frame i has timestamp i / fps seconds, measured from the first frame (its presentation
  start). The frame on screen at time t is floor(t * fps) (`time_to_index`).
- A segment [start, end) in seconds covers the frames whose timestamps fall in it:
  frames ceil(start * fps) .. ceil(end * fps) - 1, clipped to the video (`segment_frames`).
  A segment shorter than one frame interval falls back to the frame on screen at `start`.
- Uniform sampling is segment-centre (TSN test time, mmaction2 `SampleFrames` test mode):
  L frames [a, a + L) are cut into N equal parts and each part's centre frame is taken,
  index_i = a + floor((2i + 1) * L / (2N)), computed in integers. N > L repeats frames.

Every protocol returns `FrameSample` (indices, timestamps, protocol name, parameters);
`SamplingRecord` is what result files store about how their frames were obtained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

_EPS = 1e-6  # tolerance for float timestamps landing a hair below a frame boundary

VRIPT_POSITIONS = {3: (0.20, 0.50, 0.80), 4: (0.15, 0.40, 0.60, 0.85), 5: (0.15, 0.30, 0.50, 0.70, 0.85)}


@dataclass(frozen=True)
class FrameSample:
    """Frame indices to decode, their timestamps (index / fps) and how they were chosen."""

    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class SamplingRecord:
    """The sampling protocol of one result: store `to_dict()` next to every prediction."""

    protocol: str
    frames: int
    indices: list[int]
    timestamps: list[float]
    fps: float  # the video's frame rate
    backend: str  # decoder that produced the frames: "decord" or "pyav"
    resolution: tuple[int, int]  # (height, width) of the decoded frames
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resolution"] = list(self.resolution)
        out["timestamps"] = [round(t, 6) for t in self.timestamps]
        return out

    @classmethod
    def from_sample(cls, sample: FrameSample, *, fps: float, backend: str,
                    resolution: tuple[int, int]) -> SamplingRecord:
        return cls(sample.protocol, len(sample), list(sample.indices), list(sample.timestamps), float(fps), backend,
                   (int(resolution[0]), int(resolution[1])), dict(sample.params))


# ----------------------------------------------------------------------------- conventions
def time_to_index(t: float, fps: float) -> int:
    """The frame on screen at time t: floor(t * fps), tolerant to float error."""
    _check_fps(fps)
    return math.floor(t * fps + _EPS)


def index_to_time(index: int, fps: float) -> float:
    _check_fps(fps)
    return index / fps


def segment_frames(num_frames: int, fps: float, start: float | None = None,
                   end: float | None = None) -> tuple[int, int]:
    """Frame range [a, b) of the segment [start, end) seconds (None = video start / end)."""
    _check_count(num_frames)
    _check_fps(fps)
    if start is not None and end is not None and end <= start:
        raise ValueError(f"segment end {end} must be after its start {start}")
    a = 0 if start is None else min(max(math.ceil(start * fps - _EPS), 0), num_frames)
    b = num_frames if end is None else min(max(math.ceil(end * fps - _EPS), 0), num_frames)
    if a >= b:  # shorter than one frame interval: the frame on screen at `start`
        a = min(time_to_index(start or 0.0, fps), num_frames - 1)
        b = a + 1
    return a, b


def uniform_indices(n: int, a: int, b: int) -> list[int]:
    """n segment-centre indices in the frame range [a, b): a + floor((2i + 1)(b - a) / 2n)."""
    if n < 1:
        raise ValueError(f"number of frames must be >= 1, got {n}")
    if b <= a:
        raise ValueError(f"empty frame range [{a}, {b})")
    length = b - a
    return [a + (2 * i + 1) * length // (2 * n) for i in range(n)]


def _sample(indices: Sequence[int], fps: float, protocol: str, **params: Any) -> FrameSample:
    return FrameSample(tuple(int(i) for i in indices), tuple(i / fps for i in indices), protocol, params)


# ----------------------------------------------------------------------------- protocols
def sample_uniform(num_frames: int, fps: float, n: int, *, start: float | None = None,
                   end: float | None = None) -> FrameSample:
    """n frames, segment-centre uniform over the video or over [start, end) seconds."""
    a, b = segment_frames(num_frames, fps, start, end)
    return _sample(uniform_indices(n, a, b), fps, "uniform", num_frames=n, start=start, end=end)


def sample_fps(num_frames: int, fps: float, target_fps: float, *, start: float | None = None,
               end: float | None = None, max_frames: int | None = None) -> FrameSample:
    """One frame every 1/target_fps s from the segment start: times t_k = start + k / target_fps
    for t_k < end, frame = floor(t_k * fps). With more than `max_frames` samples, keep
    `max_frames` of them, segment-centre uniform over the k's."""
    if target_fps <= 0:
        raise ValueError(f"target fps must be > 0, got {target_fps}")
    a, b = segment_frames(num_frames, fps, start, end)
    t0 = max(start or 0.0, 0.0)
    t1 = num_frames / fps if end is None else min(end, num_frames / fps)
    count = max(1, math.ceil((t1 - t0) * target_fps - _EPS))
    ks = list(range(count))
    if max_frames is not None and count > max_frames:
        ks = uniform_indices(max_frames, 0, count)
    indices = [min(max(time_to_index(t0 + k / target_fps, fps), a), b - 1) for k in ks]
    return _sample(indices, fps, "fps", target_fps=target_fps, start=start, end=end, max_frames=max_frames)


def sample_clips(num_frames: int, fps: float, num_clips: int, clip_len: int, stride: int = 1, *,
                 start: float | None = None, end: float | None = None) -> list[FrameSample]:
    """K clips of N frames `stride` apart for multi-view testing (mmaction2 test mode).

    A clip spans S = (N - 1) * stride + 1 frames; its possible starts 0..D with
    D = max(L - S, 0) are cut into K equal parts and clip k starts at the centre of part k,
    floor((2k + 1)(D + 1) / 2K). Frames past the end repeat the last frame.
    """
    if num_clips < 1 or clip_len < 1 or stride < 1:
        raise ValueError(f"num_clips, clip_len and stride must be >= 1, got {num_clips}, {clip_len}, {stride}")
    a, b = segment_frames(num_frames, fps, start, end)
    span = (clip_len - 1) * stride + 1
    starts = uniform_indices(num_clips, 0, max(b - a - span, 0) + 1)
    params = dict(num_clips=num_clips, clip_len=clip_len, stride=stride, start=start, end=end)
    return [_sample([min(a + s + j * stride, b - 1) for j in range(clip_len)], fps, "clips", clip=k, **params)
            for k, s in enumerate(starts)]


def seq_indices(total: int, n: int) -> list[int]:
    """Vriptor's whole-video frame indices (vriptor/stllm/test/video_utils.py `get_seq_frames`).

    The range [0, total - 1] is cut into n parts of size s = (total - 1) / n; part i runs from
    round(s * i) to round(s * (i + 1)) and gives the integer midpoint (a + b) // 2. Rounding is half-to-even
    on the float product, as numpy's np.round does (Python's round() on floats is the same). Unlike
    `uniform_indices` this never reaches the last frame and may repeat frames when n > total.
    """
    if n < 1:
        raise ValueError(f"number of frames must be >= 1, got {n}")
    _check_count(total)
    size = float(total - 1) / n
    return [(int(round(size * i)) + int(round(size * (i + 1)))) // 2 for i in range(n)]


def sample_whole_video(num_frames: int, fps: float, n: int = 64) -> FrameSample:
    """Vriptor's whole-video sampling (demo.py -> `load_video`): min(num_frames, n) frames at `seq_indices`."""
    _check_fps(fps)
    count = min(num_frames, n)
    return _sample(seq_indices(num_frames, count), fps, "vriptor_seq", num_frames=count)


def vript_positions(duration: float) -> tuple[float, ...]:
    """Vript annotation rule: < 6 s -> 3 frames, < 30 s -> 4, otherwise 5 (fractions of the scene)."""
    if duration < 6:
        return VRIPT_POSITIONS[3]
    return VRIPT_POSITIONS[4] if duration < 30 else VRIPT_POSITIONS[5]


def sample_vript_scene(num_frames: int, fps: float, start: float, end: float) -> FrameSample:
    """Vript's 3/4/5 frames for the scene [start, end) s: t = start + p * (end - start),
    frame = floor(t * fps), kept inside the scene's frames."""
    a, b = segment_frames(num_frames, fps, start, end)
    positions = vript_positions(end - start)
    indices = [min(max(time_to_index(start + p * (end - start), fps), a), b - 1) for p in positions]
    return _sample(indices, fps, "vript", positions=list(positions), start=start, end=end)


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")


def _check_count(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"the video must have at least one frame, got {num_frames}")
