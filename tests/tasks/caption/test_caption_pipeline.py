"""`vsuite caption` end to end with tiny random VLMs on a PyAV video with planted cuts and a tone track."""

import json
import re

import pytest
from caption_browser import render
from helpers import assert_one_line_error, run_vsuite
from tiny_vlm import qwen2vl_dir, smolvlm_dir, whisper_dir  # noqa: F401  (fixtures)

from vsuite.data.vript import CAPTION_KEYS
from vsuite.errors import ModelNotFoundError
from vsuite.media.synth import make_audio_file, make_zero_frame_video

THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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
    doc = json.loads((out / "planted_caption.json").read_text())
    assert set(doc["meta"]) >= {"video_id", "video_title", "num_clips", "integrity", "sampling"}
    assert doc["meta"]["integrity"] is True and doc["meta"]["video_title"] == "Colour test"
    clips = [doc["data"][k] for k in sorted(doc["data"])]
    assert [c["clip_id"] for c in clips] == [f"planted-Scene-{i:03d}" for i in range(1, len(clips) + 1)]
    starts = [round(c["start"] * cut_video.fps) for c in clips]
    # PySceneDetect's content + threshold detectors (as Vript ran them) cut the planted fade twice: the content
    # detector at its first black frame (91), the threshold detector at the middle of the black run (94)
    assert starts == sorted([*cut_video.scene_starts, cut_video.fade_black[0]]) == [0, 30, 60, 91, 94]
    assert clips[-1]["end"] == pytest.approx(cut_video.num_frames / cut_video.fps)
    for c in clips:
        assert set(c["caption"]) == set(CAPTION_KEYS) and c["caption"]["content"]
        assert set(c) >= {"video_id", "clip_id", "video_title", "caption", "voiceover"}
        s = c["sampling"]
        assert s["frames"] in (3, 4, 5) and s["fps"] == 24.0 and s["backend"] in ("pyav", "decord")
        assert s["resolution"] == [64, 96] and all(c["start"] - 5e-4 <= t < c["end"] + 5e-4 for t in s["timestamps"])  # times kept to ms
        assert c["voiceover"], "the tone track was transcribed into a voice-over"
    cuts = json.loads((out / "planted_cut_meta.json").read_text())
    assert sorted(cuts) == sorted(doc["data"])
    asr = [json.loads(line) for line in (out / "planted_asr.jsonl").read_text().splitlines()]
    assert [a["clip_id"] for a in asr] == sorted(doc["data"]) and all(a["full_text"] for a in asr)
    scene = json.loads((out / "scenes" / "planted-Scene-001.json").read_text())
    assert scene["prompt"].startswith("Voice-over: ") and 'titled "Colour test"' in scene["prompt"]
    assert scene["prompt"].index("\nVideo frames:<video>\nBased on the voice-over") > 0  # text, frames, instruction
    assert scene["system_prompt"] == \
        "You are an excellent video director that can help me analyze the given video clip."
    assert doc["meta"]["mode"] == "vript" and doc["meta"]["prompt_family"] == "vript"
    assert "scene 1/5" in res.stderr
    # the random model never ends its answer: every one is cut off at 16 tokens, reported and left unparsed
    assert all(c["truncated"] is True and not c["caption"]["scene_title"] for c in clips)
    assert "5 answer(s) cut off at --max-new-tokens 16" in res.stderr
    assert not [p.name for p in out.rglob(".*")], "no temporary file is left"


def test_subtitles_and_script(dense_run):
    out, _ = dense_run
    doc = json.loads((out / "planted_caption.json").read_text())
    n = len(doc["data"])
    for name, sep in (("captions.srt", ","), ("captions.vtt", r"\.")):
        text = (out / name).read_text()
        cues = _cue_times(text, sep)
        assert len(cues) == n
        for (s, e), nxt in zip(cues, cues[1:] + [None]):
            assert e > s
            if nxt:
                assert nxt[0] >= e and nxt[0] > s
    assert (out / "captions.vtt").read_text().startswith("WEBVTT\n\nNOTE sampling {")
    md = (out / "script.md").read_text()
    for i, c in enumerate(sorted(doc["data"])):
        clip = doc["data"][c]
        assert f"[Scene {i + 1}/{n}: {clip['caption']['scene_title']}](Duration: [{clip['start']:.1f}, " in md
        assert "> Voice-over: " + " ".join(clip["voiceover"]) in md
    # the random model answers no JSON: no empty "Shot type:" lines; the protocol comes last
    assert all(not c["caption"]["shot_type"] for c in doc["data"].values()) and "Shot type:" not in md
    assert md.rstrip().splitlines()[-1].startswith("Sampling: {")


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
    assert "voice-over: 1 segment(s) (en) from" in res.stderr  # the transcription is cached too
    after = {p.name: p.stat().st_mtime_ns for p in (out / "scenes").glob("planted-Scene-*.json")}
    assert all(after[k] == v for k, v in before.items() if k != victim.name)
    # a changed prompt (another title) invalidates the cache
    res = run_vsuite(*[a if a != "Colour test" else "Other" for a in args], env=THREADS)
    assert res.code == 0 and f"{len(scenes)} generated" in res.stderr, res.stderr


def test_whole_video_mode_with_qwen2vl(cut_video, qwen2vl_dir, tmp_path):
    res = run_vsuite("caption", str(cut_video.path), "--model", str(qwen2vl_dir), "--out", str(tmp_path / "w"),
                     "--frames", "8", "--max-new-tokens", "8", "--device", "cpu", env=THREADS)
    assert res.code == 0, res.stderr
    doc = json.loads((tmp_path / "w" / "planted_caption.json").read_text())
    assert doc["meta"]["mode"] == "whole" and doc["meta"]["num_clips"] == 1
    clip = next(iter(doc["data"].values()))
    assert clip["sampling"]["frames"] == 8 and clip["sampling"]["family"] == "qwen2_vl"
    # get_seq_frames(120, 8): parts of 119/8 = 14.875 frames, midpoints of the rounded bounds
    assert clip["sampling"]["indices"] == [7, 22, 37, 52, 67, 81, 96, 111]
    scene = json.loads(next((tmp_path / "w" / "scenes").glob("*.json")).read_text())
    # Vriptor demo.py's whole-video instruction, the rate as duration / 64, no system prompt
    assert scene["prompt"] == "<video>Describe the video in detail (Duration: [0.0, 5.0]s, Sample Rate: 0.08s/frame)."
    assert scene["system_prompt"] is None and scene["generation"] == {"max_new_tokens": 8, "num_beams": 1,
                                                                       "do_sample": False}


def test_bad_inputs_leave_nothing_behind(tmp_path, smolvlm_dir, whisper_dir, cut_video, silent_video):
    audio = make_audio_file(tmp_path / "tone.m4a")
    empty = make_zero_frame_video(tmp_path / "empty.mp4")
    cases = [  # (arguments, exit code)
        ([str(audio), "--dense", "--model", str(smolvlm_dir)], 5),  # no video stream
        ([str(empty), "--dense", "--model", str(smolvlm_dir)], 5),  # zero frames
        ([str(cut_video.path), "--model", str(tmp_path / "no-model")], 4),
        ([str(silent_video.path), "--dense", "--model", str(smolvlm_dir), "--voiceover", "--asr-model",
          str(whisper_dir)], 5),  # --voiceover without sound
    ]
    for n, (args, code) in enumerate(cases):
        out = tmp_path / f"out{n}" / "caption"
        res = run_vsuite("caption", *args, "--out", str(out), "--storyboard", str(tmp_path / f"sb{n}" / "s.html"))
        assert_one_line_error(res, code)
        assert not (tmp_path / f"out{n}").exists() and not (tmp_path / f"sb{n}").exists(), args
    assert "--voiceover" in res.stderr  # the no-sound message says which flag to drop
    res = run_vsuite("caption", str(cut_video.path), "--model", "vsuite-test/not-cached-anywhere",
                     "--out", str(tmp_path / "hub"), env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(res, 4)
    assert not (tmp_path / "hub").exists()


def test_missing_whisper_fails_before_scene_detection(cut_video, smolvlm_dir, tmp_path, monkeypatch):
    import vsuite.media
    from vsuite.tasks import caption

    def no_detection(*args, **kwargs):
        raise AssertionError("scene detection ran before the Whisper model was checked")

    monkeypatch.setattr(vsuite.media, "detect_scenes", no_detection)
    opts = caption.CaptionOptions(model=str(smolvlm_dir), dense=True, voiceover=True,
                                  asr_model=str(tmp_path / "no-whisper"), out=tmp_path / "out", device="cpu")
    with pytest.raises(ModelNotFoundError, match="no-whisper"):
        caption.run(str(cut_video.path), opts)
    assert not (tmp_path / "out").exists()
    # the same through the CLI with a Hub id that is not cached, offline: exit 4, no scene was looked at
    res = run_vsuite("caption", str(cut_video.path), "--dense", "--model", str(smolvlm_dir), "--voiceover",
                     "--asr-model", "vsuite-test/no-such-whisper", "--out", str(tmp_path / "cli"),
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(res, 4)
    assert "scene(s)" not in res.stderr and not (tmp_path / "cli").exists()


def test_failure_after_writing_removes_only_what_the_run_created(cut_video, whisper_dir, tmp_path):
    """The model folder passes planning (it has a config.json) but does not load: by then the voice-over was
    transcribed and cached in OUT/scenes/voiceover.json. The run fails with exit 4 and takes that back."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "smolvlm"}')
    args = ["caption", str(cut_video.path), "--model", str(broken), "--voiceover", "--asr-model",
            str(whisper_dir), "--device", "cpu"]
    new = tmp_path / "new" / "out"
    res = run_vsuite(*args, "--out", str(new), "--storyboard", str(tmp_path / "new-sb" / "s.html"), env=THREADS)
    assert_one_line_error(res, 4)
    assert "voice-over: 1 segment(s) transcribed" in res.stderr  # it did get as far as writing
    assert not (tmp_path / "new").exists() and not (tmp_path / "new-sb").exists()
    # an OUT that already existed keeps what it held, and only that
    old = tmp_path / "old"
    (old / "scenes").mkdir(parents=True)
    (old / "notes.txt").write_text("mine")
    (old / "scenes" / "planted-Scene-009.json").write_text("{}")
    res = run_vsuite(*args, "--out", str(old), env=THREADS)
    assert_one_line_error(res, 4)
    assert sorted(str(p.relative_to(old)) for p in old.rglob("*")) == ["notes.txt", "scenes",
                                                                        "scenes/planted-Scene-009.json"]
    assert (old / "notes.txt").read_text() == "mine"


def test_storyboard_renders_in_chromium(dense_run, tmp_path):
    out, _ = dense_run
    page = out / "storyboard.html"
    html = page.read_text()
    assert "data:image/jpeg;base64," in html and "src='http" not in html and "<link" not in html  # self-contained
    check = render(page, tmp_path)
    doc = json.loads((out / "planted_caption.json").read_text())
    n_images = sum(c["sampling"]["frames"] for c in doc["data"].values())
    assert check["images"] == check["loaded"] == n_images
    assert check["doc_width"] <= check["viewport"] and not check["spill"], check
    assert check["details_open"] is False  # the protocol is there, folded away
    text = check["text"]
    for c in doc["data"].values():
        assert c["caption"]["scene_title"] in text
        assert " ".join(c["voiceover"]) in text.replace("\n", " ")  # the voice-over is shown per scene
    assert "class='facts'" not in html  # the random model gave no shot type or camera movement: no labels
