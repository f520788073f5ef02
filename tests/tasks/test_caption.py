"""`vsuite caption` end to end with tiny random VLMs on a PyAV video with planted cuts and a tone track."""

import json
import re

import pytest
from helpers import assert_one_line_error, run_vsuite
from tiny_vlm import qwen2vl_dir, smolvlm_dir, whisper_dir  # noqa: F401  (fixtures)

from vsuite.data.vript import CAPTION_KEYS
from vsuite.media.synth import make_audio_file, make_cut_video, make_zero_frame_video

THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    return make_cut_video(tmp_path_factory.mktemp("video") / "planted.mp4", tone_hz=440.0)


@pytest.fixture(scope="module")
def dense_run(cut_video, smolvlm_dir, whisper_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("caption") / "out"
    res = run_vsuite("caption", str(cut_video.path), "--dense", "--model", str(smolvlm_dir), "--out", str(out),
                     "--voiceover", "--asr-model", str(whisper_dir), "--title", "Colour test",
                     "--storyboard", str(out / "storyboard.html"), "--max-new-tokens", "16", "--batch-size", "2",
                     "--device", "cpu", env=THREADS)
    assert res.code == 0, res.stderr
    return out, res


def _cue_times(text: str, sep: str):
    pat = re.compile(rf"(\d\d):(\d\d):(\d\d){sep}(\d\d\d) --> (\d\d):(\d\d):(\d\d){sep}(\d\d\d)")
    out = []
    for m in pat.finditer(text):
        g = [int(x) for x in m.groups()]
        out.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000))
    return out


def test_dense_caption_json_matches_planted_cuts(dense_run, cut_video):
    out, res = dense_run
    assert res.stdout.strip() == str(out)
    doc = json.loads((out / "caption.json").read_text())
    assert set(doc["meta"]) >= {"video_id", "video_title", "num_clips", "integrity", "sampling"}
    assert doc["meta"]["integrity"] is True and doc["meta"]["video_title"] == "Colour test"
    clips = [doc["data"][k] for k in sorted(doc["data"])]
    assert [c["clip_id"] for c in clips] == [f"planted-Scene-{i:03d}" for i in range(1, len(clips) + 1)]
    starts = [round(c["start"] * cut_video.fps) for c in clips]
    assert starts == cut_video.scene_starts
    assert clips[-1]["end"] == pytest.approx(cut_video.num_frames / cut_video.fps)
    for c in clips:
        assert set(c["caption"]) == set(CAPTION_KEYS) and c["caption"]["content"]
        assert set(c) >= {"video_id", "clip_id", "video_title", "caption", "voiceover"}
        s = c["sampling"]
        assert s["frames"] in (3, 4, 5) and s["fps"] == 24.0 and s["backend"] in ("pyav", "decord")
        assert s["resolution"] == [64, 96] and all(c["start"] <= t < c["end"] for t in s["timestamps"])
        assert c["voiceover"], "the tone track was transcribed into a voice-over"
    cuts = json.loads((out / "cut_meta.json").read_text())
    assert sorted(cuts) == sorted(doc["data"])
    asr = [json.loads(line) for line in (out / "asr.jsonl").read_text().splitlines()]
    assert [a["clip_id"] for a in asr] == sorted(doc["data"]) and all(a["full_text"] for a in asr)
    scene = json.loads((out / "scenes" / "planted-Scene-001.json").read_text())
    assert scene["prompt"].startswith("Voice-over: ") and 'titled "Colour test"' in scene["prompt"]
    assert "scene 1/4" in res.stderr


def test_subtitles_and_script(dense_run):
    out, _ = dense_run
    doc = json.loads((out / "caption.json").read_text())
    n = len(doc["data"])
    for name, sep in (("captions.srt", ","), ("captions.vtt", r"\.")):
        text = (out / name).read_text()
        cues = _cue_times(text, sep)
        assert len(cues) == n
        for (s, e), nxt in zip(cues, cues[1:] + [None]):
            assert e > s
            if nxt:
                assert nxt[0] >= e and nxt[0] > s
    assert (out / "captions.vtt").read_text().startswith("WEBVTT\n")
    assert "sampling" in (out / "captions.vtt").read_text()
    md = (out / "script.md").read_text()
    for i, c in enumerate(sorted(doc["data"])):
        clip = doc["data"][c]
        assert f"[Scene {i + 1}/{n}: {clip['caption']['scene_title']}](Duration: [{clip['start']:.1f}, " in md
    assert "Sampling:" in md


def test_resume_skips_finished_scenes(dense_run, smolvlm_dir, cut_video, whisper_dir):
    out, _ = dense_run
    scenes = sorted((out / "scenes").glob("planted-Scene-*.json"))
    before = {p.name: p.stat().st_mtime_ns for p in scenes}
    victim = scenes[1]
    victim.unlink()  # as if the run had stopped before this scene
    args = ["caption", str(cut_video.path), "--dense", "--model", str(smolvlm_dir), "--out", str(out), "--voiceover",
            "--asr-model", str(whisper_dir), "--title", "Colour test", "--max-new-tokens", "16", "--batch-size", "2",
            "--device", "cpu"]
    res = run_vsuite(*args, env=THREADS)
    assert res.code == 0, res.stderr
    assert f"done: {len(scenes)} scene(s), 1 generated" in res.stderr
    assert "voice-over: 4 segment(s) from" in res.stderr  # the transcription is cached too
    after = {p.name: p.stat().st_mtime_ns for p in (out / "scenes").glob("planted-Scene-*.json")}
    assert all(after[k] == v for k, v in before.items() if k != victim.name)
    # a changed prompt (another title) invalidates the cache
    res = run_vsuite(*[a if a != "Colour test" else "Other" for a in args], env=THREADS)
    assert res.code == 0 and f"{len(scenes)} generated" in res.stderr, res.stderr


def test_whole_video_mode_with_qwen2vl(cut_video, qwen2vl_dir, tmp_path):
    res = run_vsuite("caption", str(cut_video.path), "--model", str(qwen2vl_dir), "--out", str(tmp_path / "w"),
                     "--frames", "8", "--max-new-tokens", "8", "--device", "cpu", env=THREADS)
    assert res.code == 0, res.stderr
    doc = json.loads((tmp_path / "w" / "caption.json").read_text())
    assert doc["meta"]["mode"] == "whole" and doc["meta"]["num_clips"] == 1
    clip = next(iter(doc["data"].values()))
    assert clip["sampling"]["frames"] == 8 and clip["sampling"]["family"] == "qwen2_vl"
    scene = json.loads(next((tmp_path / "w" / "scenes").glob("*.json")).read_text())
    assert scene["prompt"] == "Describe the video in detail (Duration: [0.0, 5.0]s, Sampling Rate: 0.62s/frame)."


def test_bad_inputs(tmp_path, smolvlm_dir, cut_video):
    audio = make_audio_file(tmp_path / "tone.m4a")
    assert_one_line_error(run_vsuite("caption", str(audio), "--dense", "--model", str(smolvlm_dir)), 5)
    empty = make_zero_frame_video(tmp_path / "empty.mp4")
    assert_one_line_error(run_vsuite("caption", str(empty), "--dense", "--model", str(smolvlm_dir)), 5)
    assert_one_line_error(run_vsuite("caption", str(cut_video.path), "--model", str(tmp_path / "no-model")), 4)
    res = run_vsuite("caption", str(cut_video.path), "--model", "vsuite-test/not-cached-anywhere",
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(res, 4)


def _chromium():
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_storyboard_renders_in_chromium(dense_run, tmp_path):
    import os
    import subprocess

    out, _ = dense_run
    page = out / "storyboard.html"
    html = page.read_text()
    assert "data:image/jpeg;base64," in html and "src='http" not in html  # self-contained
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed but CI=true: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=5000", "--window-size=1200,900", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "caption.json").read_text())
    n_images = sum(c["sampling"]["frames"] for c in doc["data"].values())
    assert f"IMAGES-OK {n_images}" in dom, dom[-2000:]
    for c in doc["data"].values():
        assert f"Duration: [{c['start']:.1f}, {c['end']:.1f}]" in dom
