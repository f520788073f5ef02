"""Reading video frames: one function for chosen indices or times, one generator for streams.

Backends: decord (decord2) and PyAV. "auto" uses decord when it is installed and PyAV
otherwise, and falls back to PyAV for files decord cannot open. Both give bit-identical
RGB frames on ordinary 8-bit 4:2:0 video (FFmpeg's default YUV->RGB conversion in both).

Frame i is the i-th frame in presentation order; its timestamp is its presentation time
minus the first frame's, in seconds. `times=` maps a time t to the frame on screen at t:
the last frame whose timestamp is <= t (floor(t * fps) on constant-rate video).

Every file is probed with PyAV first, so bad media raise the typed errors of
`vsuite.media.errors` whichever backend decodes.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from . import errors
from .probe import VideoInfo, open_container, packet_index, probe, video_stream
from .sampling import FrameSample, SamplingRecord

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "decord", "pyav")
_EPS = 1e-6


@dataclass
class DecodedFrames:
    """Frames [T, H, W, 3] uint8 RGB with the indices and timestamps they came from."""

    frames: torch.Tensor
    indices: list[int]
    timestamps: list[float]
    backend: str
    info: VideoInfo
    protocol: str = "indices"
    params: dict = field(default_factory=dict)

    def record(self) -> SamplingRecord:
        """How these frames were sampled, for the result file."""
        height, width = (int(self.frames.shape[1]), int(self.frames.shape[2])) if self.frames.ndim == 4 else (0, 0)
        return SamplingRecord(self.protocol, len(self.indices), list(self.indices), list(self.timestamps),
                              self.info.fps, self.backend, (height, width), dict(self.params))


def decord_available() -> bool:
    """Whether decord is installed (checked without loading it: see `_import_decord`)."""
    from importlib.util import find_spec

    return find_spec("decord") is not None


def _import_decord():
    """Import decord only after torch. decord2's import dlopens every library of the `nvidia`
    pip packages with RTLD_GLOBAL, libnvblas included: loaded before torch, NVBLAS takes over
    torch's double-precision BLAS calls (segfault on CPU-only machines, banners on stderr)."""
    import torch  # noqa: F401  - must come first
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def resolve_backend(backend: str) -> str:
    """'auto' -> 'decord' if installed else 'pyav'; explicit names are checked."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "decord" if decord_available() else "pyav"
    if backend == "decord" and not decord_available():
        raise errors.BackendUnavailableError(
            "the decord backend is not installed; `pip install decord2` or use backend='pyav'")
    return backend


def read_frames(path: str | Path, indices: Sequence[int] | FrameSample | None = None, *,
                times: Sequence[float] | None = None, backend: str = "auto", num_threads: int = 0) -> DecodedFrames:
    """Decode the frames at `indices` (any order, repeats allowed), or at `times` seconds.

    `indices` may be a FrameSample from `vsuite.media.sampling`; its protocol goes into the
    result's `record()`. Out-of-range requests raise FrameRangeError.
    """
    import torch

    if (indices is None) == (times is None):
        raise ValueError("give exactly one of indices or times")
    info = probe(path)
    protocol, params = "indices", {}
    if isinstance(indices, FrameSample):
        protocol, params, indices = indices.protocol, dict(indices.params), list(indices.indices)
    elif times is not None:
        protocol, params = "times", {"times": [float(t) for t in times]}
    with _open_reader(path, info, backend, num_threads) as reader:
        stamps = reader.timestamps()
        if times is not None:
            indices = [_time_to_index(path, float(t), stamps, info) for t in times]
        indices = [int(i) for i in indices]
        for i in indices:
            if not 0 <= i < len(stamps):
                raise errors.FrameRangeError(
                    f"frame {i} is outside {path} ({len(stamps)} frames); sample within the video's length", path)
        order = sorted(set(indices))
        array = reader.get(order)
    frames = torch.from_numpy(array)
    if indices != order:  # gather into the requested order, repeats included
        position = {index: k for k, index in enumerate(order)}
        frames = frames[[position[i] for i in indices]]
    return DecodedFrames(frames, indices, [stamps[i] for i in indices], reader.name, info, protocol, params)


def iter_frames(path: str | Path, *, start: int = 0, end: int | None = None, step: int = 1,
                batch_size: int | None = None, backend: str = "auto") -> Iterator:
    """Stream frames [start, end) every `step` in bounded memory.

    Yields (index, timestamp, frame[H, W, 3]) or, with `batch_size`, (indices, timestamps,
    frames[B, H, W, 3]). Only the current batch is held (decord decodes at most 16 frames
    ahead). Errors surface at the first `next()`. A file whose data stops early raises
    TruncatedMediaError: with PyAV after its last good frame, with decord before the first
    (decord's index already shows the gap).
    """
    if step < 1 or start < 0 or (batch_size is not None and batch_size < 1):
        raise ValueError(f"need start >= 0, step >= 1, batch_size >= 1; got {start}, {step}, {batch_size}")
    info = probe(path)
    reader = _try_decord(path, info, backend)
    items = _decord_stream(reader, start, end, step) if reader else _pyav_stream(path, info, start, end, step)
    if batch_size is None:
        yield from items
    else:
        yield from _batched(items, batch_size)


def _batched(items: Iterator, batch_size: int) -> Iterator:
    import torch

    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield [b[0] for b in batch], [b[1] for b in batch], torch.stack([b[2] for b in batch])
            batch = []
    if batch:
        yield [b[0] for b in batch], [b[1] for b in batch], torch.stack([b[2] for b in batch])


def _time_to_index(path, t: float, stamps: list[float], info: VideoInfo) -> int:
    end = max(info.duration, stamps[-1] + (1 / info.fps if info.fps else 0.0))
    if t < -_EPS or t >= end - _EPS:
        raise errors.FrameRangeError(
            f"time {t:.3f}s is outside {path} (0 to {end:.3f}s); sample within the video's duration", path)
    return max(bisect_right(stamps, t + _EPS) - 1, 0)


def _open_reader(path, info: VideoInfo, backend: str, num_threads: int):
    return _try_decord(path, info, backend, num_threads) or _PyAVReader(path, info, num_threads)


def _try_decord(path, info: VideoInfo, backend: str, num_threads: int = 0) -> _DecordReader | None:
    """A decord reader when the backend resolves to decord; None means use PyAV ("auto" falls
    back to PyAV for files decord cannot open, e.g. AV1)."""
    if resolve_backend(backend) != "decord":
        return None
    try:
        return _DecordReader(path, info, num_threads)
    except errors.MediaError:
        raise
    except Exception as err:  # noqa: BLE001 - decord raises DECORDError / RuntimeError
        if backend == "decord":
            raise errors.BackendUnavailableError(
                f"decord cannot open {path} ({errors.shorten(str(err), 80)}); use backend='pyav'", path) from None
        return None


# ----------------------------------------------------------------------------- PyAV
class _PyAVReader:
    """Random access by seeking to the last keyframe at or before each target and decoding forward."""

    name = "pyav"

    def __init__(self, path, info: VideoInfo, num_threads: int = 0) -> None:
        self.path, self.info = path, info
        self.container = open_container(path)
        self.stream = video_stream(self.container)
        self.stream.thread_type = "AUTO"
        if num_threads:
            self.stream.codec_context.thread_count = num_threads
        self.pts, keys = packet_index(path, self.container, self.stream)
        self.keys = sorted(keys | {0})
        if not self.pts:
            raise errors.empty_video(path)
        if info.num_frames and len(self.pts) < info.num_frames:
            raise errors.missing_frames(path, info.num_frames, len(self.pts))
        self.where = {pts: i for i, pts in enumerate(self.pts)}
        self.decoder, self.pos = None, -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()

    def timestamps(self) -> list[float]:
        base, tb = self.pts[0], float(self.stream.time_base)
        return [round((p - base) * tb, 6) for p in self.pts]

    def get(self, order: list[int]):
        import numpy as np

        out = None
        for k, target in enumerate(order):
            rgb = self._frame(target).to_ndarray(format="rgb24")
            if out is None:
                out = np.empty((len(order), *rgb.shape), np.uint8)
            out[k] = rgb
        return out if out is not None else np.empty((0, self.info.height, self.info.width, 3), np.uint8)

    def _frame(self, target: int):
        key = self.keys[bisect_right(self.keys, target) - 1]
        if self.decoder is None or target <= self.pos or key > self.pos + 1:
            self._seek(key)
        for _ in range(2):
            frame = self._decode_until(target)
            if frame is not None:
                return frame
            self._seek(0)  # overshoot after an inexact seek: decode from the start
        raise errors.truncated(self.path, f"frame {target} could not be decoded")

    def _seek(self, key: int) -> None:
        self.container.seek(self.pts[key], stream=self.stream, backward=True, any_frame=False)
        self.decoder, self.pos = self.container.decode(self.stream), key - 1

    def _decode_until(self, target: int):
        import av

        try:
            for frame in self.decoder:
                index = self.where.get(frame.pts, self.pos + 1)
                self.pos = index
                if index == target:
                    return frame
                if index > target:
                    return None
        except av.error.FFmpegError as err:
            raise errors.truncated(self.path, f"decoding failed near frame {self.pos + 1} ({err})") from None
        raise errors.truncated(self.path, f"the data ends before frame {target} of {len(self.pts)}")


def _pyav_stream(path, info: VideoInfo, start: int, end: int | None, step: int) -> Iterator:
    import av
    import torch

    with open_container(path) as container:
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        where, base = None, None
        if start > 0:  # seek to the keyframe before `start`; the packet index maps pts -> frame index
            pts, keys = packet_index(path, container, stream)
            if start >= len(pts):
                return
            where, base = {p: i for i, p in enumerate(pts)}, pts[0]
            key = max(i for i in keys | {0} if i <= start)
            container.seek(pts[key], stream=stream, backward=True, any_frame=False)
        tb, index = float(stream.time_base), -1
        try:
            for frame in container.decode(stream):
                if base is None:
                    base = frame.pts if frame.pts is not None else 0
                index = where.get(frame.pts, index + 1) if where is not None else index + 1
                if end is not None and index >= end:
                    return
                if index >= start and (index - start) % step == 0:
                    ts = round(((frame.pts if frame.pts is not None else base) - base) * tb, 6)
                    yield index, ts, torch.from_numpy(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as err:
            raise errors.truncated(path, f"decoding failed after frame {index} ({err})") from None
    expected = info.num_frames if end is None else min(end, info.num_frames)
    if index + 1 < expected:
        raise errors.truncated(path, f"the data ends after frame {index} of {info.num_frames}")


# ----------------------------------------------------------------------------- decord
class _DecordReader:
    """decord's VideoReader; repairs its row-padding bug (frames of some widths, e.g. 32, 48,
    96, come back as [H, W, 4] or fail to batch) by reading those frames one by one."""

    name = "decord"

    def __init__(self, path, info: VideoInfo, num_threads: int = 0) -> None:
        decord = _import_decord()
        self.path, self.info = path, info
        self.vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
        if len(self.vr) == 0:
            raise errors.empty_video(path)
        if info.num_frames and len(self.vr) < info.num_frames:
            raise errors.missing_frames(path, info.num_frames, len(self.vr))
        self.batch_ok = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        del self.vr

    def timestamps(self) -> list[float]:
        starts = self.vr.get_frame_timestamp(list(range(len(self.vr))))[:, 0]
        return [round(float(t - starts[0]), 6) for t in starts]

    def get(self, order: list[int]):
        """[len(order), H, W, 3]; after one bad batch (decord's row-padding bug) reads frame by frame."""
        import numpy as np

        shape = (self.info.height, self.info.width, 3)
        if self.batch_ok:
            try:
                array = self.vr.get_batch(order).asnumpy()
                if array.shape[1:] == shape:
                    return array
            except Exception:  # noqa: BLE001 - decord's DECORDError; retried frame by frame below
                pass
            self.batch_ok = False
        out = np.empty((len(order), *shape), np.uint8)
        for k, i in enumerate(order):
            try:
                out[k] = _unpad(self.vr[i].asnumpy(), shape)
            except errors.MediaError:
                raise
            except Exception as err:  # noqa: BLE001
                reason = errors.shorten(str(err), 80)
                raise errors.truncated(self.path, f"decord could not decode frame {i} ({reason})") from None
        return out


def _unpad(array, shape):
    """decord returns frames with padded rows as [H, stride/W, ...]: drop the padding bytes."""
    if array.shape == shape:
        return array
    height, width, _ = shape
    rows = array.reshape(height, -1)
    if rows.shape[1] < width * 3:
        raise errors.MediaError(f"decord returned a frame of shape {array.shape}, expected {shape}; use backend='pyav'")
    return rows[:, : width * 3].reshape(shape)


def _decord_stream(reader: _DecordReader, start: int, end: int | None, step: int, chunk: int = 16) -> Iterator:
    import torch

    with reader:
        stamps = reader.timestamps()
        wanted = range(start, len(stamps) if end is None else min(end, len(stamps)), step)
        for lo in range(0, len(wanted), chunk):
            ids = list(wanted[lo: lo + chunk])
            array = torch.from_numpy(reader.get(ids))
            for k, i in enumerate(ids):
                yield i, stamps[i], array[k]
