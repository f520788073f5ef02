"""`vsuite segment`: the AVSBench sampling (frame at 15/16 of each second, the audio example of its second), the
outputs (mask PNGs, overlay MP4 with every frame and the original audio, summary.json), streaming, and bad inputs
(no audio track, unreadable file, missing model: one-line error, its exit code, no output folder).

The pipeline tests use a stand-in segmenter whose mask depends only on the audio it is given (left half of the
frame when the example holds sound, nothing when silent), so where the masks land is hand-computable; the
command-line test runs the real tiny AVSModel."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, run_vsuite

from vsuite.media import synth

FPS = 24
SIZE = (48, 64)  # H, W of the test videos
TONE_SECONDS = 3  # the test video beeps in its first 3 s (until 2.7 s: AVSBench's 4th example starts at 2.88 s)


def _beep_then_silence(path: Path, num_frames: int, fps: int = FPS, *, sample_rate: int = 44100) -> Path:
    """Frames show their index (synth.index_pattern); audio: a 440 Hz tone until 2.7 s, then silence."""
    wave = synth.sine(440.0, num_frames / fps, sample_rate)
    wave[round(2.7 * sample_rate):] = 0.0
    frames = (synth.index_pattern(i, *SIZE) for i in range(num_frames))
    return synth.write_video(path, frames, fps, audio=wave, sample_rate=sample_rate)


class LeftIfSound(torch.nn.Module):
    """Stand-in segmenter: logits +8 on the left half of every frame whose audio example holds sound (max log-mel
    above 0; silence is log(0.01) = -4.6), -8 elsewhere. Records what it was given."""

    def __init__(self, size: int = 32, frames_seen=None):
        super().__init__()
        self.config = SimpleNamespace(num_frames=5, image_size=size, model_type="vsuite_avs")
        self.calls, self.frames_seen = [], frames_seen

    def forward(self, pixel_values, audio_log_mel):
        b, t, _, s, _ = pixel_values.shape
        assert audio_log_mel.shape == (b, t, 1, 96, 64) and pixel_values.shape == (b, t, 3, s, s)
        self.calls.append({"shape": tuple(pixel_values.shape), "yielded": self.frames_seen and self.frames_seen[0]})
        sound = audio_log_mel.flatten(2).amax(-1) > 0  # [B, T]
        logits = torch.full((b, t, 1, s, s), -8.0)
        logits[..., : s // 2] = torch.where(sound, 8.0, -8.0)[..., None, None, None]
        return SimpleNamespace(logits=logits)


@pytest.fixture
def fake_model(monkeypatch):
    """Route --model to LeftIfSound (in-process runs of vsuite.tasks.segment)."""
    import vsuite.models.segmenter as seg

    box = {}

    def load(folder, device):
        box["net"] = LeftIfSound(frames_seen=box.get("frames_seen"))
        return box["net"]

    monkeypatch.setattr(seg, "model_folder", lambda ref, flag="--model": Path(ref))
    monkeypatch.setattr(seg, "load_segmenter", load)
    return box


def _run(video, out, **kw):
    from vsuite.tasks import segment as task

    return task.run(str(video), task.SegmentOptions(model="stand-in", out=out, **kw))


def _decode(path: Path):
    import av

    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        meta = {"video_duration": float(v.duration * v.time_base), "audio_duration": float(a.duration * a.time_base),
                "audio_codec": a.codec_context.name}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return frames, meta


def test_one_frame_per_second_at_15_16_with_its_seconds_audio(tmp_path, fake_model, capsys):
    video = _beep_then_silence(tmp_path / "beep.mp4", num_frames=150)  # 6.25 s
    summary = _run(video, tmp_path / "out")
    out = tmp_path / "out"
    assert capsys.readouterr().out.strip() == str(out)  # the folder on stdout
    # the frame on screen at s + 15/16: floor((s + 0.9375) * 24) = 22, 46, 70, 94, 118, 142; second 6 is partial
    # (6.0-6.25 s): its 15/16 point lies after the end, so the last frame (149) stands for it
    assert [r["frame"] for r in summary["frames"]] == [22, 46, 70, 94, 118, 142, 149]
    assert [r["second"] for r in summary["frames"]] == [0, 1, 2, 3, 4, 5, 6]
    assert [r["time"] for r in summary["frames"]] == [round(i / FPS, 6) for i in (22, 46, 70, 94, 118, 142, 149)]
    # the tone lasts 3 s: seconds 0-2 sound (left half masked), 3-6 silent
    assert [r["area"] for r in summary["frames"]] == [0.5, 0.5, 0.5, 0, 0, 0, 0]
    assert [r["pixels"] for r in summary["frames"]] == [SIZE[0] * SIZE[1] // 2] * 3 + [0] * 4
    # windows of 5 seconds: [0-4] and [5, 6] filled up to 5 by repeating second 6
    assert [c["shape"][:2] for c in fake_model["net"].calls] == [(1, 5), (1, 5)]
    for rec in summary["frames"]:
        mask = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(out / rec["mask"]))
        assert mask.shape == SIZE and set(np.unique(mask)) <= {0, 255}
        assert (mask > 0).sum() == rec["pixels"]
        if rec["pixels"]:
            assert mask[:, : SIZE[1] // 2].all() and not mask[:, SIZE[1] // 2:].any()
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"frame_{i:06d}.png" for i in
                                                                 (22, 46, 70, 94, 118, 142, 149)]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["frames"] == summary["frames"] and on_disk["segmented_frames"] == 7
    assert on_disk["sampling"]["fps"] == "1" and on_disk["sampling"]["window"] == 5
    assert "15/16" in on_disk["sampling"]["frames"] and on_disk["threshold"] == 0.5
    assert on_disk["num_frames"] == 150 and on_disk["duration"] == pytest.approx(6.25)
    assert not list(tmp_path.glob(".out.partial-*"))  # the staging folder is gone


def test_overlay_has_every_frame_tinted_and_the_original_audio(tmp_path, fake_model):
    video = _beep_then_silence(tmp_path / "beep.mp4", num_frames=120)  # 5 s
    summary = _run(video, tmp_path / "out")
    assert summary["overlay"]["frames"] == 120 and summary["overlay"]["audio"]["mode"] == "copied"
    frames, meta = _decode(tmp_path / "out" / "overlay.mp4")
    original, src = _decode(video)
    assert len(frames) == len(original) == 120
    assert meta["video_duration"] == pytest.approx(src["video_duration"], abs=1e-3)
    assert meta["audio_duration"] == pytest.approx(src["audio_duration"], abs=1e-3)
    assert meta["audio_codec"] == "aac"
    half = SIZE[1] // 2
    for i in (10, 70, 100):  # second 0 and 2 sound -> tinted left half; second 4 silent -> untouched
        f, o = frames[i].astype(float), original[i].astype(float)
        right = np.abs(f[:, half + 2:] - o[:, half + 2:]).mean()
        assert right < 6, (i, right)  # only compression noise
        left_red = f[:, : half - 2, 0].mean() - o[:, : half - 2, 0].mean()
        if i < TONE_SECONDS * FPS:
            assert left_red > 40, (i, left_red)  # halfway to (255, 40, 40)
        else:
            assert abs(left_red) < 6, (i, left_red)


def test_every_frame_takes_its_seconds_audio_and_audio_is_reencoded_when_mp4_cannot_hold_it(tmp_path, fake_model):
    import av

    video = tmp_path / "pcm.mkv"  # PCM audio: re-encoded to AAC in the overlay
    rate, n = 16000, 60
    wave = synth.sine(440.0, n / FPS, rate)
    wave[round(0.9 * rate):] = 0.0  # a tone in the first second's example only (0-0.96 s)
    with av.open(str(video), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        aus = c.add_stream("pcm_s16le", rate=rate)
        aus.layout = "mono"
        for i in range(n):
            c.mux(vs.encode(av.VideoFrame.from_ndarray(synth.index_pattern(i, *SIZE), format="rgb24")))
        c.mux(vs.encode())
        pcm = (wave * 32767).astype(np.int16)[None]
        for s in range(0, pcm.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, s:s + 1024]), format="s16p", layout="mono")
            frame.sample_rate, frame.pts = rate, s
            c.mux(aus.encode(frame))
        c.mux(aus.encode())
    summary = _run(video, tmp_path / "out", fps="all", batch_size=2)
    recs = summary["frames"]
    assert [r["frame"] for r in recs] == list(range(n)) and summary["sampling"]["fps"] == "all"
    assert [r["second"] for r in recs] == [math.floor(i / FPS + 1e-6) for i in range(n)]
    assert [r["area"] for r in recs] == [0.5] * FPS + [0.0] * (n - FPS)  # the second with the tone only
    # 60 frames = 12 windows of 5, 2 per call
    assert [c["shape"][:2] for c in fake_model["net"].calls] == [(2, 5)] * 6
    assert summary["overlay"]["audio"] == {"codec": "pcm_s16le", "mode": "re-encoded to aac",
                                           "packets": summary["overlay"]["audio"]["packets"]}
    frames, meta = _decode(tmp_path / "out" / "overlay.mp4")
    assert len(frames) == n and meta["audio_codec"] == "aac"
    assert meta["audio_duration"] == pytest.approx(n / FPS, abs=0.1)


def test_frames_stream_in_windows(tmp_path, fake_model, monkeypatch):
    """The model sees the first window before the decoder has gone further than the next frame: the video is
    never held in memory."""
    import vsuite.media as media

    video = _beep_then_silence(tmp_path / "long.mp4", num_frames=240)  # 10 s
    real, seen = media.iter_frames, [0]

    def counting(*args, **kwargs):
        for item in real(*args, **kwargs):
            seen[0] += 1
            yield item

    monkeypatch.setattr(media, "iter_frames", counting)
    fake_model["frames_seen"] = seen
    _run(video, tmp_path / "out", fps="all", batch_size=1)
    calls = fake_model["net"].calls
    assert len(calls) == 48
    for j, call in enumerate(calls):  # window j holds frames 5j..5j+4: decoded so far at most 5j+5
        assert call["yielded"] <= 5 * (j + 1), (j, call["yielded"])


def test_a_failure_mid_run_leaves_nothing(tmp_path, fake_model, monkeypatch):
    """A decoder failure after the masks were written (in the overlay pass) removes the staging folder and the
    folders --out would have created."""
    from vsuite.media.errors import TruncatedMediaError
    from vsuite.tasks import segment as task

    def broken(*args, **kwargs):
        raise TruncatedMediaError("beep.mp4 looks truncated")

    monkeypatch.setattr(task, "write_overlay", broken)
    video = _beep_then_silence(tmp_path / "beep.mp4", num_frames=48)
    with pytest.raises(TruncatedMediaError):
        _run(video, tmp_path / "new" / "deeper" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beep.mp4"]


def test_output_into_an_existing_folder_replaces_masks(tmp_path, fake_model):
    video = _beep_then_silence(tmp_path / "beep.mp4", num_frames=48)
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "stale.png").write_bytes(b"x")
    (out / "notes.txt").write_text("mine")
    _run(video, out)
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["frame_000022.png", "frame_000046.png"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "overlay.mp4").is_file()


# ----------------------------------------------------------------------------- bad inputs (real processes)
@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("segment-media")
    return {"silent": synth.make_index_video(root / "silent.mp4", num_frames=24, fps=FPS),
            "beep": synth.make_index_video(root / "beep.mp4", num_frames=24, fps=FPS, tone_hz=440.0),
            "junk": synth.make_not_media(root / "junk.mp4")}


@pytest.mark.parametrize("case, code, words", [
    ("silent", 5, "no audio track"),
    ("junk", 5, "cannot read"),
    ("missing-model", 4, "no model folder"),
    ("missing-video", 5, "not found"),
])
def test_bad_input_is_a_one_line_error_and_leaves_nothing(tmp_path, media, case, code, words):
    out = tmp_path / "out"
    video = {"missing-video": tmp_path / "nope.mp4", "missing-model": media["beep"]}.get(case) or media[case]
    res = run_vsuite("segment", str(video), "--model", str(tmp_path / "no-model"), "--out", str(out))
    assert_one_line_error(res, code)
    assert words in res.stderr, res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_default_model_missing_says_how_to_get_one(tmp_path, media):
    res = run_vsuite("segment", str(media["beep"]), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(res, 4)
    assert "no segmenter at runs/avs-s4-pvt" in res.stderr and "finetune/avs-s4-pvt" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, words", [
    (["--fps", "2"], "--fps must be one of 1, all"),
    (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_bad_flags_are_usage_errors(tmp_path, media, args, words):
    res = run_vsuite("segment", str(media["beep"]), "--out", str(tmp_path / "out"), *args)
    assert_one_line_error(res, 2)
    assert words in res.stderr and not (tmp_path / "out").exists()


def test_the_command_with_a_real_model(tmp_path, media):
    """`vsuite segment` end to end with a (random) tiny AVSModel folder: every output, the frame count, the audio."""
    from helpers import save_tiny_segmenter

    save_tiny_segmenter(tmp_path / "model")
    res = run_vsuite("segment", str(media["beep"]), "--model", str(tmp_path / "model"), "--json", "--fps", "all",
                     "--batch-size", "2", "--out", str(tmp_path / "out"))
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["out"] == str(tmp_path / "out") and summary["model"] == str(tmp_path / "model")
    assert summary["segmented_frames"] == 24 and len(summary["frames"]) == 24
    assert set(summary["frames"][0]) == {"frame", "time", "second", "mask", "area", "pixels"}
    assert summary["sampling"]["fps"] == "all" and summary["sampling"]["image_size"] == 64
    assert all(0 <= r["area"] <= 1 and r["pixels"] == round(r["area"] * 64 * 96) for r in summary["frames"])
    frames, meta = _decode(tmp_path / "out" / "overlay.mp4")
    assert len(frames) == 24 and meta["audio_codec"] == "aac" and meta["audio_duration"] == pytest.approx(1.0, abs=0.05)
    assert len(list((tmp_path / "out" / "masks").glob("frame_*.png"))) == 24
