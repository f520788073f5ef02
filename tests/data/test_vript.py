"""Vript formats and prompts (vsuite.data.vript)."""

import json

import pytest

from vsuite.data import vript
from vsuite.errors import DataError


def test_clip_ids_and_headers():
    assert vript.clip_id("0J7UPHL08fU", 0) == "0J7UPHL08fU-Scene-001"
    assert vript.script_header(0, 3, "Playful Encounter", 0.0, 5.2, 17.0) == \
        "[Scene 1/3: Playful Encounter](Duration: [0.0, 5.2]/17.0s)"


# Vript README lines 241-249 (mutonix/Vript at 3dd89c7), typed out by hand: leading and trailing newline,
# three spaces after "(150 words)".
ANNOTATION_PLAIN = (
    "\nBased on the successive frames above, please describe:\n"
    "1) the shot type (15 words)\n"
    "2) the camera movement (15 words)\n"
    "3) what is happening as detailed as possible (e.g. plots, characters' actions, environment, light, all objects, "
    "what they look like, colors, etc.) (150 words)   \n"
    "4) Summarize the content to title the scene (10 words)\n"
    "Directly return in the json format like this:\n"
    '{"shot_type": "...", "camera_movement": "...", "content": "...", "scene_title": "..."}. Do not describe the '
    "frames individually but the whole clip.\n")


def test_annotation_prompt_is_vripts_text():
    before, instruction = vript.annotation_prompt()
    assert before == "" and instruction == ANNOTATION_PLAIN
    before, instruction = vript.annotation_prompt("My trip", " hello there \n")
    assert before == "Voice-over: hello there\nVideo frames:"  # stripped, as Vript strips full_text
    assert instruction == ANNOTATION_PLAIN.replace(
        "Based on the successive frames above",
        'Based on the voice-over and successive frames from a video titled "My trip" above')
    assert vript.annotation_prompt(None, "   ")[0] == ""  # a blank voice-over is no voice-over
    # voice-over text, then the frames, then the instruction
    assert vript.scene_prompt("T", "hi") == 'Voice-over: hi\nVideo frames:<video>\nBased on the voice-over and ' \
        'successive frames from a video titled "T" above, please describe:\n' + ANNOTATION_PLAIN.split(":\n", 1)[1]
    assert vript.system_prompt("vript") == vript.ANNOTATION_SYSTEM == \
        "You are an excellent video director that can help me analyze the given video clip."


def test_vriptor_demo_prompts():
    """vriptor/demo.py's four strings ("Sample Rate" but in the voiced scene-by-scene one), the rate as
    str(round(duration / 64, 2)) like the stage-2 data."""
    assert vript.vriptor_prompt(32.0, 64, family="vriptor") == \
        "Describe the video in detail (Duration: [0.0, 32.0]s, Sample Rate: 0.5s/frame)."
    assert vript.vriptor_prompt(32.0, scene_by_scene=True, family="vriptor") == \
        "Describe the video scene by scene in detail (Duration: [0.0, 32.0]s, Sample Rate: 0.5s/frame)."
    voice = vript.voiceover_lines([(0.0, 1.04, " hi "), (1.25, 3.0, "yo"), (3.0, 4.0, "  ")])
    assert voice == "[0.0, 1.0] hi\n[1.2, 3.0] yo\n"  # a newline after every line, round() half to even
    assert vript.vriptor_prompt(129.6, scene_by_scene=True, voiceover=voice, family="vriptor") == \
        'Voiceover:"[0.0, 1.0] hi\n[1.2, 3.0] yo\n". Based on the video and voiceover, describe the video scene by ' \
        "scene in detail (Duration: [0.0, 129.6]s, Sampling Rate: 2.02s/frame)."
    assert vript.vriptor_prompt(17.04, voiceover=voice, family="vriptor") == \
        'Voiceover:"[0.0, 1.0] hi\n[1.2, 3.0] yo\n". Based on the video and voiceover, describe the video in ' \
        "detail (Duration: [0.0, 17.0]s, Sample Rate: 0.27s/frame)."
    assert vript.system_prompt("vriptor") is None and vript.system_prompt("vriptor-stage2") is None


def test_vriptor_stage2_prompts():
    """The stage-2 data builders' strings (build_training_vript_stage2_*.py; samples in vript_stage2_*.json)."""
    assert vript.vriptor_prompt(31.9, scene_by_scene=True) == \
        "Describe the video scene by scene in detail (Duration: [0.0, 31.9]s, Sampling Rate: 0.5s/frame)."
    assert vript.vriptor_prompt(19.6) == \
        "Describe the video in detail (Duration: [0.0, 19.6]s, Sampling Rate: 0.31s/frame)."
    assert vript.vriptor_prompt(10.0, voiceover="[0.0, 1.0] hi\n") == \
        'Voiceover:"[0.0, 1.0] hi\n". Based on the video and voiceover, describe the video in detail ' \
        "(Duration: [0.0, 10.0]s, Sampling Rate: 0.16s/frame)."
    with pytest.raises(ValueError, match="unknown prompt family"):
        vript.vriptor_prompt(10.0, family="gpt")


def test_parse_script_splits_scenes():
    text = ("[Scene 1/3: Playful Encounter](Duration: [0.0, 5.2]/17.0s)\nThe cat\n sits.\n\n"
            "[Scene 2/3: Dog](Duration: [5.2, 11.0]/17.0s)\nA dog barks.\n\n"
            "[Scene 3: Night](Duration: [10.0, 18.5])\nDark.")
    assert vript.parse_script(text, 17.0) == [
        {"scene_title": "Playful Encounter", "content": "The cat sits.", "start": 0.0, "end": 5.2},
        {"scene_title": "Dog", "content": "A dog barks.", "start": 5.2, "end": 11.0},
        {"scene_title": "Night", "content": "Dark.", "start": 11.0, "end": 17.0}]  # monotone, inside the video
    assert vript.parse_script("A cat sits on a mat.", 17.0) == []


def test_caption_record(tmp_path):
    assert vript.read_caption_record(tmp_path) is None
    (tmp_path / vript.CAPTION_RECORD).write_text(vript.caption_record_text("vriptor", "vriptor-stage2"))
    assert vript.read_caption_record(tmp_path) == {"mode": "vriptor", "prompt_family": "vriptor-stage2",
                                                   "system_prompt": None, "frames": 64}
    (tmp_path / vript.CAPTION_RECORD).write_text("[1]")
    assert vript.read_caption_record(tmp_path) is None


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
    assert video.asr[cid]["full_text"] == "hi " and video.span(cid) == (1.0, 3.0)
    assert set(video.clips[cid]["caption"]) == set(vript.CAPTION_KEYS)


def test_bad_files(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"meta": {}}))
    with pytest.raises(DataError):
        vript.read_caption_json(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(DataError):
        vript.read_caption_json(tmp_path / "y.json")
