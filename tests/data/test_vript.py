"""Vript formats and prompts (vsuite.data.vript)."""

import json

import pytest

from vsuite.data import vript
from vsuite.errors import DataError


def test_clip_ids_and_headers():
    assert vript.clip_id("0J7UPHL08fU", 0) == "0J7UPHL08fU-Scene-001"
    assert vript.script_header(0, 3, "Playful Encounter", 0.0, 5.2, 17.0) == \
        "[Scene 1/3: Playful Encounter](Duration: [0.0, 5.2]/17.0s)"


def test_annotation_prompt_follows_vript():
    plain = vript.scene_prompt()
    assert plain.startswith("Based on the successive frames above, please describe: 1) the shot type (15 words)")
    assert plain.endswith("Do not describe the frames individually but the whole clip.")
    assert '{"shot_type": "...", "camera_movement": "...", "content": "...", "scene_title": "..."}' in plain
    full = vript.scene_prompt("My trip", "hello there")
    assert full.startswith("Voice-over: hello there\nVideo frames:\nBased on the voice-over and successive frames "
                           'from a video titled "My trip" above')


def test_vriptor_prompts():
    assert vript.vriptor_prompt(17.0, 64) == \
        "Describe the video in detail (Duration: [0.0, 17.0]s, Sampling Rate: 0.27s/frame)."
    voiced = vript.vriptor_prompt(10.0, 10, scene_by_scene=True, voiceover="[0.0, 1.0] hi")
    assert voiced.startswith('Voiceover:"[0.0, 1.0] hi". Based on the video and voiceover, describe the video scene '
                             "by scene in detail (Duration: [0.0, 10.0]s, Sampling Rate: 1.00s/frame).")


def test_parse_caption():
    ans = 'Sure: {"shot_type": "Wide", "camera_movement": "static", "content": "A red room.", "scene_title": "Red"}'
    assert vript.parse_caption(ans) == {"shot_type": "Wide", "camera_movement": "static", "content": "A red room.",
                                        "scene_title": "Red"}
    loose = vript.parse_caption("a cat \x01 jumps over a dog in the park today")
    assert loose["content"] == "a cat jumps over a dog in the park today"
    assert loose["scene_title"] == "a cat jumps over a dog"


def test_files_round_trip(tmp_path):
    cid = vript.clip_id("vid", 0)
    clips = {cid: vript.clip_record("vid", cid, "T", {"content": "c", "scene_title": "t"}, ["hi"])}
    vript.atomic_write_json(tmp_path / "vid_caption.json", vript.caption_json("vid", "T", clips))
    vript.write_asr_jsonl(tmp_path / "vid_asr.jsonl", [vript.asr_record(cid, 2.0, [(0.0, 1.0, "hi")])])
    vript.atomic_write_json(tmp_path / "vid_cut_meta.json", vript.cut_meta({cid: (1.0, 3.0)}))
    video = vript.load_video_annotations(tmp_path / "vid_caption.json")
    assert video.video_id == "vid" and video.clip_ids() == [cid] and video.meta["integrity"] is True
    assert video.asr[cid]["full_text"] == "hi" and video.span(cid) == (1.0, 3.0)
    assert set(video.clips[cid]["caption"]) == set(vript.CAPTION_KEYS)


def test_bad_files(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"meta": {}}))
    with pytest.raises(DataError):
        vript.read_caption_json(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(DataError):
        vript.read_caption_json(tmp_path / "y.json")
