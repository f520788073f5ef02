"""Frame reading: both backends return the requested frames, bit-identical, and stream in bounded memory."""

from __future__ import annotations

import inspect
import json
import random
import weakref

import pytest
import torch

from vsuite.media import (FrameRangeError, iter_frames, probe, read_frames, resolve_backend, sample_clips,
                          sample_uniform)
from vsuite.media.decode import decord_available
from vsuite.media.synth import make_bar_video, read_index


def decoded_indices(frames: torch.Tensor) -> list[int]:
    return [read_index(frame) for frame in frames]


def test_probe_metadata(index_video, index_video_wide):
    info = probe(index_video)
    assert (info.fps, info.num_frames, info.duration, info.width, info.height) == (24.0, 48, 2.0, 96, 64)
    assert info.has_video and info.has_audio and info.audio_sample_rate == 44100 and info.audio_channels == 1
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    wide = probe(index_video_wide, count_frames=True)
    assert (wide.fps, wide.num_frames, wide.duration, wide.width, wide.height) == (30.0, 60, 2.0, 128, 64)
    assert not wide.has_audio and wide.audio_sample_rate is None
    assert json.loads(json.dumps(wide.to_dict()))["num_frames"] == 60


@pytest.mark.parametrize("video", ["index_video", "index_video_wide"])
def test_read_indices(backend, video, request):
    path = request.getfixturevalue(video)
    n = probe(path).num_frames
    wanted = [n - 8, 3, 17, 17, 0, n - 1, 4]  # unsorted, repeated, both ends, across keyframes
    out = read_frames(path, wanted, backend=backend)
    assert out.frames.dtype == torch.uint8 and out.frames.shape[1:] == (64, probe(path).width, 3)
    assert out.indices == wanted and decoded_indices(out.frames) == wanted
    assert out.backend == backend


def test_read_random_access_matches_sequential(backend, index_video_wide):
    rng = random.Random(0)
    for _ in range(3):
        wanted = [rng.randrange(60) for _ in range(12)]
        assert decoded_indices(read_frames(index_video_wide, wanted, backend=backend).frames) == wanted


def test_read_times(backend, index_video):
    fps = 24
    times = [0.0, 0.99 / fps, 1.0 / fps, 0.5, 1.2345, 47 / fps, 1.999]
    out = read_frames(index_video, times=times, backend=backend)
    expected = [int(t * fps + 1e-6) for t in times]  # the frame on screen at t
    assert out.indices == expected and decoded_indices(out.frames) == expected
    assert out.timestamps == pytest.approx([i / fps for i in expected], abs=1e-6)


@pytest.mark.skipif(not decord_available(), reason="decord not installed")
@pytest.mark.parametrize("video", ["index_video", "index_video_wide"])
def test_backends_bit_identical(video, request):
    path = request.getfixturevalue(video)
    everything = list(range(probe(path).num_frames))
    a = read_frames(path, everything, backend="pyav")
    b = read_frames(path, everything, backend="decord")
    assert torch.equal(a.frames, b.frames)
    assert a.timestamps == pytest.approx(b.timestamps, abs=1e-6)
    times = [0.3, 1.01, 0.0]
    assert torch.equal(read_frames(path, times=times, backend="pyav").frames,
                       read_frames(path, times=times, backend="decord").frames)


def test_auto_backend():
    assert resolve_backend("auto") == ("decord" if decord_available() else "pyav")
    assert resolve_backend("pyav") == "pyav"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("opencv")


def test_sample_then_read_records_protocol(index_video):
    info = probe(index_video)
    sample = sample_uniform(info.num_frames, info.fps, 8)
    out = read_frames(index_video, sample, backend="pyav")
    assert decoded_indices(out.frames) == list(sample.indices)
    record = out.record().to_dict()
    assert record["protocol"] == "uniform" and record["frames"] == 8 and record["backend"] == "pyav"
    assert record["resolution"] == [64, 96] and record["fps"] == 24.0 and record["indices"] == list(sample.indices)
    assert record["params"]["num_frames"] == 8
    json.dumps(record)
    clip = sample_clips(info.num_frames, info.fps, 2, 4, 3)[1]
    assert decoded_indices(read_frames(index_video, clip).frames) == list(clip.indices)


def test_out_of_range_requests(index_video):
    with pytest.raises(FrameRangeError, match="frame 48 is outside"):
        read_frames(index_video, [0, 48], backend="pyav")
    with pytest.raises(FrameRangeError, match="time 2.000s is outside"):
        read_frames(index_video, times=[2.0], backend="pyav")
    with pytest.raises(ValueError):
        read_frames(index_video)


def test_stream_every_frame_once(backend, index_video_wide):
    items = iter_frames(index_video_wide, backend=backend)
    assert inspect.isgenerator(items)
    seen = [(i, t, read_index(frame)) for i, t, frame in items]
    assert [i for i, _, _ in seen] == list(range(60)) and [k for _, _, k in seen] == list(range(60))
    assert [t for _, t, _ in seen] == pytest.approx([i / 30 for i in range(60)], abs=1e-6)


def test_stream_range_and_batches(backend, long_video):
    picked = [(i, read_index(f)) for i, _, f in iter_frames(long_video, start=123, end=190, step=7, backend=backend)]
    assert picked == [(i, i) for i in range(123, 190, 7)]
    batches = list(iter_frames(long_video, start=390, batch_size=4, backend=backend))
    assert [len(ids) for ids, _, _ in batches] == [4, 4, 2]
    assert all(frames.shape == (len(ids), 64, 96, 3) for ids, _, frames in batches)
    assert [i for ids, _, _ in batches for i in ids] == list(range(390, 400))


def test_stream_holds_only_the_current_batch(backend, long_video):
    """Frames already handed out are not kept alive by the generator, and decoding is lazy."""
    alive, count = [], 0
    for ids, _, frames in iter_frames(long_video, batch_size=8, backend=backend):
        alive.append(weakref.ref(frames))
        count += len(ids)
        del frames  # refcounting frees it at once unless something else holds it
        assert sum(ref() is not None for ref in alive) <= 1
    assert count == 400


# Real memory (torch's frame buffers are invisible to tracemalloc): a fresh interpreter streams a video
# and reports how far its resident set grew past the first batch: VmRSS sampled at every batch, and
# VmHWM after resetting it (/proc/self/clear_refs) where the kernel allows. With ACCUMULATE it keeps
# every batch, the bug the test is there to catch.
STREAM_RSS = r"""
import sys
from vsuite.media import iter_frames

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

path, accumulate = sys.argv[1], sys.argv[2] == "1"
kept, base, peak, reset = [], None, 0, False
for indices, _, frames in iter_frames(path, batch_size=8, backend="pyav"):
    if accumulate:
        kept.append(frames)
    if base is None:  # decoder and allocator warmed up
        base = status("VmRSS")
        try:
            open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS from here on
            reset = True
        except OSError:
            pass
    peak = max(peak, status("VmRSS"))
if reset:
    peak = max(peak, status("VmHWM"))
print(peak - base)
"""


def _stream_growth(path, accumulate=False) -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", STREAM_RSS, str(path), "1" if accumulate else "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1])


def test_stream_memory_is_bounded(media_dir):
    """Peak resident memory while streaming does not grow with the video's length."""
    from vsuite.media.synth import make_index_video

    size = (256, 320)  # 240 KiB per decoded frame: holding the frames would show far above allocator noise
    short = make_index_video(media_dir / "rss_short.mp4", num_frames=100, fps=25, size=size, gop=25)
    long = make_index_video(media_dir / "rss_long.mp4", num_frames=400, fps=25, size=size, gop=25)
    whole_long = 400 * size[0] * size[1] * 3  # 98 MB of decoded frames
    grew_short, grew_long = _stream_growth(short), _stream_growth(long)
    assert grew_long < whole_long / 8, f"RSS grew {grew_long} bytes streaming a {whole_long}-byte video"
    # 4x the frames, ~same memory: holding the 300 extra frames would add ~74 MB; allocator noise on the av floor
    # (14.1) reached 6.2 MB between the two runs
    assert grew_long < grew_short + whole_long / 8, (grew_short, grew_long)
    held = _stream_growth(long, accumulate=True)  # the measurement does see frames that are kept
    assert held > whole_long * 0.75, held


def test_bar_videos_move_the_right_way(media_dir):
    def centres(direction):
        path = make_bar_video(media_dir / f"bar_{direction}.mp4", direction, num_frames=8, fps=8, size=(32, 64))
        frames = read_frames(path, list(range(8)), backend="pyav").frames.float().mean(dim=(1, 3))  # [T, W]
        columns = torch.arange(frames.shape[1], dtype=torch.float32)
        return ((frames * columns).sum(1) / frames.sum(1)).tolist()

    right, left = centres("right"), centres("left")
    assert right == sorted(right) and right[-1] - right[0] > 40
    assert left == sorted(left, reverse=True) and left[0] - left[-1] > 40
