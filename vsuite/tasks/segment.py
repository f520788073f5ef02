"""`vsuite segment VIDEO --model M`: masks of the objects that make the sound (AVS with bidirectional generation).

Sampling (recorded in summary.json):
  - `--fps 1` (default, the AVSBench protocol): one frame per second, the one on screen at 15/16 of the second
    (AVSBench keeps the sample k % 16 == 15 of 16 per second); consecutive seconds form windows of T = 5 frames,
    and each window is processed as an AVSBench clip: its 5 s of audio (16 kHz mono) -> 0.96 s VGGish log-mel
    examples at 0.96 s hops, example k paired with second k of the window, the last repeated when the audio
    is shorter (AVSBench's padding; a window with less than 0.96 s of sound is padded with silence).
  - `--fps all`: every frame, in windows of 5 consecutive frames; each frame takes the example of its second
    (the same example `--fps 1` gives that second).
  The last window is filled up to T by repeating its last frame (and example); those repeats are dropped.

Outputs, in OUT (default VIDEO's folder/<name>.segment):
  masks/frame_XXXXXX.png   one binary mask (0/255, the video's resolution) per segmented frame, XXXXXX = its index
  overlay.mp4              every frame of the video with its mask tinted over it (with --fps 1 a frame takes the
                           mask of its second), at the video's frame times, with the original audio (its packets
                           copied when MP4 holds the codec, else re-encoded to AAC): same frames, same duration
  summary.json             per segmented frame: index, time, second, mask file, area (fraction and pixels);
                           the sampling protocol, the model, the threshold

Memory is bounded whatever the length: frames stream (vsuite.media.iter_frames) in windows, audio is decoded
per 5 s block, masks go to disk as they are made and the overlay pass reads them back one at a time.
Everything is written into a hidden staging folder beside OUT and moved into OUT only when complete, so a
failure (bad media: exit 5; missing model: exit 4; Ctrl-C) leaves no partial output.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..console import Progress, log, out as print_out
from ..errors import UsageError

WINDOW_SECONDS = 5  # AVSBench clips: 5 s, one frame per second
FRAME_POSITION = 15 / 16  # AVSBench: the 16th of 16 evenly spaced samples per second
TINT = (255, 40, 40)  # overlay colour of the sounding region
TINT_ALPHA = 0.5
REMUX_CODECS = ("aac", "mp3")  # audio copied into the MP4 as it is; anything else is re-encoded to AAC
FPS_CHOICES = ("1", "all")
DEFAULT_MODEL = "runs/avs-s4-pvt"  # the run folder of the shipped S4 recipe (its best/ checkpoint)
_EPS = 1e-6


@dataclass
class SegmentOptions:
    model: str = DEFAULT_MODEL
    out: Path | None = None
    fps: str = "1"
    threshold: float = 0.5
    device: str = "auto"
    batch_size: int = 1  # windows per forward pass
    video_backend: str = "auto"
    as_json: bool = False


def check_options(opts: SegmentOptions) -> None:
    """Pure checks (no heavy import): UsageError (exit 2)."""
    if opts.fps not in FPS_CHOICES:
        raise UsageError(f"--fps must be 1 or all, got {opts.fps!r}")
    if not 0.0 < opts.threshold < 1.0:
        raise UsageError(f"--threshold must be between 0 and 1 (a probability), got {opts.threshold}")
    if opts.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {opts.batch_size}")
    if opts.out is not None and Path(opts.out).exists() and not Path(opts.out).is_dir():
        raise UsageError(f"--out {opts.out} is a file, not a folder; give a folder (it is created if missing)")


# ----------------------------------------------------------------------------- sampling
@dataclass
class Sample:
    """One frame the model segments: `frame` [H, W, 3] uint8 until its mask is written."""

    k: int  # position among the segmented frames
    index: int  # frame index in the video
    time: float  # its timestamp (s)
    second: int  # whose audio example it takes
    frame: object = None


def one_per_second(frames, duration: float):
    """(index, time, frame) stream -> a Sample for every second s: the frame on screen at s + 15/16 (the last
    frame for a final partial second), when that frame belongs to second s. One frame is held back at a time."""
    seconds = max(1, math.ceil(duration - _EPS))
    s, k, prev, emitted = 0, 0, None, -1
    for index, ts, frame in frames:
        while prev is not None and s < seconds and ts > s + FRAME_POSITION + _EPS:
            if prev[1] >= s - _EPS and prev[0] != emitted:
                yield Sample(k, prev[0], prev[1], s, prev[2])
                k, emitted = k + 1, prev[0]
            s += 1
        prev = (index, ts, frame)
    while prev is not None and s < seconds:  # the end of the stream: the last frame is on screen
        if prev[1] >= s - _EPS and prev[0] != emitted:
            yield Sample(k, prev[0], prev[1], s, prev[2])
            k, emitted = k + 1, prev[0]
        s += 1


def every_frame(frames):
    for k, (index, ts, frame) in enumerate(frames):
        yield Sample(k, index, ts, int(math.floor(ts + _EPS)), frame)


class BlockAudio:
    """VGGish examples per second, computed per 5 s block exactly as AVSBench preprocesses a 5 s clip; holds the
    current block only (frames arrive in time order)."""

    def __init__(self, video: Path, duration: float):
        self.video, self.duration = video, duration
        self.block, self.examples, self.rate = None, None, None
        self.silent_blocks = 0

    def example(self, second: int):
        """[96, 64] log-mel example of `second`."""
        block = second // WINDOW_SECONDS
        if block != self.block:
            self.block, self.examples = block, self._load(block)
        return self.examples[min(second - block * WINDOW_SECONDS, len(self.examples) - 1)]

    def _load(self, block: int):
        """[5, 96, 64] float32 tensor for the block's seconds (AVSBench: examples at 0.96 s hops, last repeated)."""
        import numpy as np
        import torch

        from ..media import audio_sample_rate, load_audio
        from ..media.errors import FrameRangeError
        from ..media.vggish_input import pad_examples, waveform_to_examples

        if self.rate is None:
            self.rate = audio_sample_rate(self.video)
        start = block * WINDOW_SECONDS
        end = min(start + WINDOW_SECONDS, max(self.duration, start + 1.0))
        try:  # the file's own rate: vggish_input resamples as torchvggish does
            wave = load_audio(self.video, None, start=float(start), end=float(end)).numpy()
        except FrameRangeError:  # the audio track ends before the video: silence
            wave = np.zeros(0, np.float32)
        one = math.ceil(self.rate * 0.975)  # one example: 96 hops of 10 ms + the 25 ms window's overhang
        if wave.shape[0] < one:
            self.silent_blocks += wave.shape[0] == 0
            wave = np.concatenate([wave, np.zeros(one - wave.shape[0], np.float32)])
        examples = waveform_to_examples(wave, self.rate)  # [N, 96, 64]
        return torch.from_numpy(pad_examples(examples, WINDOW_SECONDS, source=self.video))


# ----------------------------------------------------------------------------- pass 1: masks
def windows(samples, size: int):
    """Consecutive samples in lists of `size` (the last may be shorter)."""
    window = []
    for sample in samples:
        window.append(sample)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def segment_masks(net, samples, audio: BlockAudio, staging: Path, opts: SegmentOptions, device,
                  progress: Progress) -> list[dict]:
    """Run the model over the samples in windows of T frames, `batch_size` windows per call; write each mask
    PNG into staging/masks and return one record per sample."""
    import torch

    from ..models.segmenter import frames_to_pixels, window_logits

    cfg = net.config
    steps, size = int(getattr(cfg, "num_frames", WINDOW_SECONDS)), int(cfg.image_size)
    records: list[dict] = []
    (staging / "masks").mkdir(parents=True, exist_ok=True)
    for batch in windows(windows(samples, steps), opts.batch_size):
        pixels, mels = [], []
        for window in batch:  # fill a short window up to T with its last frame; dropped below
            full = window + [window[-1]] * (steps - len(window))
            pixels.append(frames_to_pixels(torch.stack([s.frame for s in full]), size))  # [T, 3, S, S]
            mels.append(torch.stack([audio.example(s.second) for s in full])[:, None])  # [T, 1, 96, 64]
        logits = window_logits(net, torch.stack(pixels), torch.stack(mels), device)  # [B, T, S, S]
        for w, window in enumerate(batch):
            for t, sample in enumerate(window):
                records.append(_write_mask(sample, logits[w, t], opts.threshold, staging))
                sample.frame = None  # the frame is no longer needed
            progress.advance(f"{records[-1]['time']:.1f}s")
    return records


def _write_mask(sample: Sample, logits, threshold: float, staging: Path) -> dict:
    """Upsample the logits [S, S] to the frame's size (bilinear), threshold the sigmoid, save a 0/255 PNG."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    height, width = int(sample.frame.shape[0]), int(sample.frame.shape[1])
    full = F.interpolate(logits[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    mask = (torch.sigmoid(full) > threshold).numpy()
    name = f"masks/frame_{sample.index:06d}.png"
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(staging / name)
    pixels = int(mask.sum())
    return {"frame": sample.index, "time": round(sample.time, 6), "second": sample.second, "mask": name,
            "area": round(pixels / (height * width), 6), "pixels": pixels}


# ----------------------------------------------------------------------------- pass 2: overlay
def write_overlay(video: Path, records: list[dict], staging: Path, opts: SegmentOptions, progress: Progress) -> dict:
    """staging/overlay.mp4: every frame of the video, its mask tinted over it, the original audio; returns
    {"file", "frames", "audio"}."""
    import av
    import numpy as np
    from PIL import Image

    from ..media import iter_frames
    from ..media.probe import open_container

    by_frame = {r["frame"]: r for r in records}
    by_second = {}
    for r in records:
        by_second.setdefault(r["second"], r)
    src = open_container(video)
    audio_src = open_container(video)
    target = staging / "overlay.mp4"
    try:
        vin = src.streams.video[0]
        ain = audio_src.streams.audio[0]
        rate = vin.average_rate or vin.guessed_rate or 25
        with av.open(str(target), "w", format="mp4") as dst:
            vout = dst.add_stream("libx264", rate=rate)
            vout.width, vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
            vout.pix_fmt = "yuv420p"
            vout.time_base = vin.time_base
            vout.options = {"crf": "20", "preset": "veryfast"}
            audio = _AudioCopy(audio_src, ain, dst)
            tint = np.array(TINT, np.float32)
            cached, mask, count, last = None, None, 0, None
            for index, ts, frame in iter_frames(video, backend=opts.video_backend):
                rec = by_frame.get(index) if opts.fps == "all" else _second_record(by_second, ts)
                if rec is not None and rec["mask"] != cached:  # one mask PNG held at a time
                    cached = rec["mask"]
                    mask = np.asarray(Image.open(staging / cached)) > 127
                rgb = frame.numpy()[: vout.height, : vout.width]
                if mask is not None:
                    m = mask[: vout.height, : vout.width, None] * TINT_ALPHA
                    rgb = (rgb * (1 - m) + tint * m).round().astype(np.uint8)
                out = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                pts = round(ts / float(vin.time_base))
                if last is not None and pts <= last:  # rounding of odd time bases: keep pts strictly increasing
                    pts = last + 1
                out.pts, out.time_base, last = pts, vin.time_base, pts
                dst.mux(vout.encode(out))
                audio.until(ts)
                count += 1
                if count % 50 == 0:
                    progress.advance(f"overlay {ts:.1f}s")
            dst.mux(vout.encode())
            audio.until(None)
        return {"file": target.name, "frames": count, "audio": audio.describe()}
    finally:
        src.close()
        audio_src.close()


def _second_record(by_second: dict, ts: float) -> dict | None:
    """--fps 1: the record of the frame's second, else the nearest earlier second's."""
    second = int(math.floor(ts + _EPS))
    for s in range(second, -1, -1):
        if s in by_second:
            return by_second[s]
    return None


class _AudioCopy:
    """The input's first audio stream into the MP4, interleaved with the video: packets copied when MP4 holds the
    codec (REMUX_CODECS), else decoded and re-encoded to AAC at the same rate and layout."""

    def __init__(self, container, stream, dst):
        import av

        self.stream, self.dst = stream, dst
        self.codec = stream.codec_context.name
        self.copy = self.codec in REMUX_CODECS
        if self.copy:
            self.out = dst.add_stream_from_template(stream)
        else:
            ctx = stream.codec_context
            self.out = dst.add_stream("aac", rate=ctx.sample_rate)
            # a file's layout may be unnamed ("1 channels"): mono or stereo for AAC
            self.out.layout = "mono" if ctx.layout.nb_channels == 1 else "stereo"
            self.resampler = av.AudioResampler(format="fltp", layout=self.out.layout, rate=ctx.sample_rate)
        self.packets = container.demux(stream)
        self.pending = None
        self.done = False
        self.muxed = 0

    def _items(self):
        """(time in s, packets to mux) in stream order."""
        for packet in self.packets:
            if packet.dts is None:  # the demuxer's flush packet
                continue
            when = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            if self.copy:
                packet.stream = self.out
                yield when, [packet]
            else:
                out = []
                for frame in packet.decode():
                    frame.pts = None
                    for piece in self.resampler.resample(frame):
                        out.extend(self.out.encode(piece))
                yield when, out
        if not self.copy:
            out = [p for piece in self.resampler.resample(None) for p in self.out.encode(piece)]
            yield math.inf, out + list(self.out.encode(None))

    def until(self, ts: float | None) -> None:
        """Mux the audio up to video time `ts` (None: all that is left)."""
        if self.done:
            return
        if not hasattr(self, "_iter"):
            self._iter = self._items()
        if self.pending is not None:
            when, packets = self.pending
            if ts is not None and when > ts:
                return
            self._mux(packets)
            self.pending = None
        for when, packets in self._iter:
            if ts is not None and when > ts:
                self.pending = (when, packets)
                return
            self._mux(packets)
        self.done = True

    def _mux(self, packets) -> None:
        for packet in packets:
            self.dst.mux(packet)
            self.muxed += 1

    def describe(self) -> dict:
        return {"codec": self.codec, "mode": "copied" if self.copy else "re-encoded to aac", "packets": self.muxed}


# ----------------------------------------------------------------------------- the command
def _first_missing(folder: Path) -> Path | None:
    """The highest missing folder on the way to `folder` (None when it exists)."""
    folder = Path(folder).absolute()
    if folder.exists():
        return None
    while not folder.parent.exists():
        folder = folder.parent
    return folder


def _staging_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.partial-{os.getpid()}"


def _publish(staging: Path, out: Path) -> None:
    """Move the finished files into OUT: a rename when OUT does not exist; else file by file (masks/ replaced)."""
    if not out.exists():
        os.replace(staging, out)
        return
    if (out / "masks").is_dir():
        shutil.rmtree(out / "masks")
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()


def run(video: str, opts: SegmentOptions) -> dict:
    """Segment VIDEO; returns summary.json's document (printed with --json; else OUT's path on stdout)."""
    import sys

    from ..devices import resolve_device
    from ..media import probe
    from ..media.errors import NoAudioStreamError

    check_options(opts)
    path = Path(video)
    info = probe(path)  # missing / unreadable / no video stream: DataError (exit 5), before anything is written
    if not info.has_audio:
        raise NoAudioStreamError(f"{path} has no audio track; segment finds what makes the sound, so it needs "
                                 "a video with sound", path)
    from ..models.segmenter import load_segmenter, model_folder  # (imports every model family: seconds)

    if opts.model == DEFAULT_MODEL and not Path(DEFAULT_MODEL).exists():
        from ..errors import ModelNotFoundError

        raise ModelNotFoundError(f"no segmenter at {DEFAULT_MODEL} (the default --model, the run folder of "
                                 "`vsuite finetune finetune/avs-s4-pvt`); train one or pass --model DIR")
    folder = model_folder(opts.model)  # exit 4 before any output
    device = resolve_device(opts.device)
    out = Path(opts.out) if opts.out else path.parent / f"{path.stem}.segment"
    net = load_segmenter(folder, device)
    duration = info.duration or (info.num_frames / info.fps if info.fps else 0.0)
    staging = _staging_folder(out)
    start = time.monotonic()
    log(f"model {folder} on {device} | {path.name}: {duration:.1f}s, {info.num_frames} frames at {info.fps:.2f} fps "
        f"| --fps {opts.fps}, windows of {net.config.num_frames} frames, {opts.batch_size} per call")
    made = _first_missing(out.parent)  # folders this run creates above OUT: removed again on failure
    done = False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        from ..media import iter_frames

        frames = iter_frames(path, backend=opts.video_backend)
        samples = one_per_second(frames, duration) if opts.fps == "1" else every_frame(frames)
        audio = BlockAudio(path, duration)
        expected = max(1, math.ceil(duration - _EPS)) if opts.fps == "1" else info.num_frames
        windows_total = math.ceil(expected / net.config.num_frames)
        with Progress("segment", windows_total, every=max(1, windows_total // 10)) as progress:
            records = segment_masks(net, samples, audio, staging, opts, device, progress)
        if not records:
            from ..media.errors import empty_video

            raise empty_video(path)
        with Progress("overlay", max(1, info.num_frames // 50), every=5) as progress:
            overlay = write_overlay(path, records, staging, opts, progress)
        summary = _summary(path, info, duration, folder, device, opts, net.config, records, overlay,
                           audio, time.monotonic() - start)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _publish(staging, out)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done and made is not None:
            shutil.rmtree(made, ignore_errors=True)
    summary["out"] = str(out)
    areas = [r["area"] for r in records]
    log(f"{len(records)} frame(s) segmented in {summary['elapsed_s']:.1f}s; sounding area mean "
        f"{sum(areas) / len(areas):.3f}, max {max(areas):.3f}; wrote {out}")
    if opts.as_json:
        print_out(summary)
    else:
        sys.stdout.write(f"{out}\n")
        sys.stdout.flush()
    return summary


def _summary(path, info, duration, folder, device, opts, config, records, overlay, audio, elapsed) -> dict:
    steps = int(config.num_frames)
    if opts.fps == "1":
        rule = (f"the frame on screen at s + 15/16 of every second s (AVSBench); windows of {steps} consecutive "
                "seconds")
    else:
        rule = f"every frame; windows of {steps} consecutive frames"
    protocol = {
        "fps": opts.fps, "frames": rule, "window": steps, "image_size": int(config.image_size),
        "resize": "squash to a square, bilinear (antialiased), ImageNet mean/std",
        "audio": ("16 kHz mono; per 5 s block, VGGish log-mel examples of 0.96 s at 0.96 s hops, example k for "
                  "second k of the block, the last repeated when short (AVSBench); under 0.96 s padded with silence"),
        "padding": "a last window shorter than the model's frames is filled by repeating its last frame; dropped",
        "backend": opts.video_backend, "threshold": opts.threshold,
    }
    return {"video": str(path), "model": str(folder), "device": str(device), "duration": round(duration, 6),
            "fps": info.fps, "num_frames": info.num_frames, "width": info.width, "height": info.height,
            "sampling": protocol, "threshold": opts.threshold, "segmented_frames": len(records),
            "frames": records, "overlay": overlay, "silent_audio_blocks": audio.silent_blocks,
            "elapsed_s": round(elapsed, 3)}
