"""`vsuite caption`'s modes: which question each mode asks (exact text), with which frames and decoding, how a
Vriptor answer is split into scenes, and that an answer cut off by the token limit is never parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsuite.data import vript
from vsuite.errors import UsageError
from vsuite.media.sampling import sample_vript_scene, sample_whole_video
from vsuite.tasks.caption import generate
from vsuite.tasks.caption.plan import MODES, CaptionOptions, Plan, ScenePlan, generation_settings, resolve_mode

ANNOTATION_TAIL = (
    "above, please describe:\n1) the shot type (15 words)\n2) the camera movement (15 words)\n"
    "3) what is happening as detailed as possible (e.g. plots, characters' actions, environment, light, all objects, "
    "what they look like, colors, etc.) (150 words)   \n4) Summarize the content to title the scene (10 words)\n"
    "Directly return in the json format like this:\n"
    '{"shot_type": "...", "camera_movement": "...", "content": "...", "scene_title": "..."}. Do not describe the '
    "frames individually but the whole clip.\n")


def make_plan(mode: str, family: str, video: Path = Path("v.mp4"), fps: float = 24.0, num_frames: int = 768,
              spans=((0.0, 10.0), (10.0, 32.0))) -> Plan:
    duration = num_frames / fps
    plan = Plan(video=video, video_id="v", title="v", out=Path("/nonexistent"), fps=fps, num_frames=num_frames,
                duration=duration, dense=mode == "vript", model_ref="m", model_dir=Path("m"), family="smolvlm",
                fingerprint="fp", device="cpu", dtype="float32", mode=mode, prompt_family=family,
                generation=generation_settings(CaptionOptions(), mode))
    if mode == "vript":
        plan.scenes = [ScenePlan(k, vript.clip_id("v", k), round(s * fps), round(e * fps), s, e,
                                 sample_vript_scene(num_frames, fps, s, e)) for k, (s, e) in enumerate(spans)]
    else:
        plan.scenes = [ScenePlan(0, vript.clip_id("v", 0), 0, num_frames, 0.0, duration,
                                 sample_whole_video(num_frames, fps))]
    return plan


SEGMENTS = [(1.0, 4.04, " Hello there "), (9.0, 12.0, "over the cut"), (20.0, 21.0, "later")]


def test_vript_mode_asks_vripts_annotation_question():
    plan = make_plan("vript", "vript")
    reqs = generate.requests(plan, CaptionOptions(title="My trip"), SEGMENTS)
    assert [r.system for r in reqs] == [vript.ANNOTATION_SYSTEM] * 2
    first, second = reqs
    # voice-over text -> frames -> instruction
    assert first.before == "Voice-over: Hello there over the cut\nVideo frames:"
    assert first.prompt == '\nBased on the voice-over and successive frames from a video titled "My trip" ' + \
        ANNOTATION_TAIL
    assert first.full_prompt == first.before + "<video>" + first.prompt
    assert second.before == "Voice-over: over the cut later\nVideo frames:"
    silent = generate.requests(plan, CaptionOptions(), [])[0]
    assert silent.before == "" and silent.prompt == "\nBased on the successive frames " + ANNOTATION_TAIL


def test_vriptor_mode_asks_the_demo_question_without_system_prompt():
    plan = make_plan("vriptor", "vriptor")  # 768 frames at 24 fps: 32 s, 0.5 s/frame
    (req,) = generate.requests(plan, CaptionOptions(), [])
    assert req.system is None and req.before == ""
    assert req.prompt == \
        "Describe the video scene by scene in detail (Duration: [0.0, 32.0]s, Sample Rate: 0.5s/frame)."
    (voiced,) = generate.requests(plan, CaptionOptions(), SEGMENTS)
    assert voiced.prompt == ('Voiceover:"[1.0, 4.0] Hello there\n[9.0, 12.0] over the cut\n[20.0, 21.0] later\n". '
                             "Based on the video and voiceover, describe the video scene by scene in detail "
                             "(Duration: [0.0, 32.0]s, Sampling Rate: 0.5s/frame).")
    assert len(req.scene.sample) == 64 and req.scene.sample.protocol == "vriptor_seq"
    whole = generate.requests(make_plan("whole", "vriptor"), CaptionOptions(), [])[0]
    assert whole.prompt == "Describe the video in detail (Duration: [0.0, 32.0]s, Sample Rate: 0.5s/frame)."
    trained = generate.requests(make_plan("vriptor", "vriptor-stage2"), CaptionOptions(), [])[0]
    assert trained.prompt == \
        "Describe the video scene by scene in detail (Duration: [0.0, 32.0]s, Sampling Rate: 0.5s/frame)."
    assert len({r.key for r in (req, voiced, whole, trained)}) == 4


def test_decoding_defaults_per_mode_and_flags_override():
    assert generation_settings(CaptionOptions(), "vriptor") == {
        "num_beams": 3, "do_sample": True, "top_p": 0.9, "repetition_penalty": 1.5, "max_new_tokens": 2048}
    assert generation_settings(CaptionOptions(), "vript") == {"max_new_tokens": 256, "num_beams": 1,
                                                              "do_sample": False}
    opts = CaptionOptions(max_new_tokens=64, num_beams=1, do_sample=False)
    assert generation_settings(opts, "vriptor") == {"num_beams": 1, "do_sample": False, "repetition_penalty": 1.5,
                                                    "max_new_tokens": 64}


@pytest.mark.parametrize("dense, mode, record, name, expected", [
    (None, "auto", None, "HuggingFaceTB/SmolVLM2", ("whole", "vriptor")),  # unchanged default
    (True, "auto", None, "HuggingFaceTB/SmolVLM2", ("vript", "vript")),  # --dense on a generic VLM
    (True, "auto", None, "Mutonix/Vriptor-STLLM", ("vriptor", "vriptor")),  # a Vriptor checkpoint
    (None, "auto", {"mode": "vriptor", "prompt_family": "vriptor-stage2"}, "run/model", ("vriptor", "vriptor-stage2")),
    (True, "auto", {"mode": "vriptor", "prompt_family": "vriptor-stage2"}, "run/model", ("vriptor", "vriptor-stage2")),
    (False, "auto", {"mode": "vriptor", "prompt_family": "vriptor-stage2"}, "run/model", ("whole", "vriptor-stage2")),
    (None, "vript", {"mode": "vriptor", "prompt_family": "vriptor-stage2"}, "run/model", ("vript", "vript")),
])
def test_mode_resolution(dense, mode, record, name, expected):
    assert resolve_mode(CaptionOptions(dense=dense, mode=mode), name, "smolvlm", record) == expected


def test_contradicting_flags_are_usage_errors(tmp_path):
    from vsuite.tasks.caption.plan import make_plan as real_plan

    with pytest.raises(UsageError, match="contradicts"):
        real_plan(tmp_path / "v.mp4", CaptionOptions(mode="whole", dense=True))
    with pytest.raises(UsageError, match="--mode"):
        real_plan(tmp_path / "v.mp4", CaptionOptions(mode="scenes"))


def test_cli_mode_choices_match_the_plan():
    from helpers import assert_one_line_error, run_vsuite

    res = run_vsuite("caption", "missing.mp4", "--mode", "scenes")
    assert_one_line_error(res, 2)
    assert ", ".join(MODES) in res.stderr
    assert_one_line_error(run_vsuite("caption", "missing.mp4", "--mode", "vriptor", "--whole"), 2)
    assert_one_line_error(run_vsuite("caption", "missing.mp4", "--top-p", "0"), 2)


class FakeVLM:
    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def generate_full(self, items, **gen):
        from vsuite.models.vlm import Generation

        self.calls.append((items, gen))
        return [Generation(text, cut, 7) for text, cut in self.answers[:len(items)]]

    def describe(self):
        return {"vlm_backend": "fake"}


SCRIPT = ("[Scene 1/2: Red room](Duration: [0.0, 1.2]/5.0s)\nA red room.\n\n"
          "[Scene 2/2: Green room](Duration: [1.2, 5.0]/5.0s)\nA green room.")


def test_truncated_answers_are_reported_not_parsed(cut_video):
    plan = make_plan("vript", "vript", cut_video.path, cut_video.fps, cut_video.num_frames, spans=((0.0, 1.25),))
    reqs = generate.requests(plan, CaptionOptions(), [])
    cut = '{"shot_type": "Wide shot", "camera_movement": "sta'
    ((_, rec),) = generate._generate(FakeVLM([(cut, True)]), plan, CaptionOptions(), reqs)
    assert rec["truncated"] is True and rec["answer"] == cut
    assert rec["caption"] == {"shot_type": "", "camera_movement": "", "content": cut, "scene_title": ""}
    ((_, rec),) = generate._generate(FakeVLM([(cut + 'tic", "content": "A red room.", "scene_title": "Red"}', False)]),
                                     plan, CaptionOptions(), reqs)
    assert rec["truncated"] is False and rec["caption"]["shot_type"] == "Wide shot"
    # vriptor mode: a cut-off script stays one whole-video record; a finished one is split at its headers
    plan = make_plan("vriptor", "vriptor", cut_video.path, cut_video.fps, cut_video.num_frames)
    reqs = generate.requests(plan, CaptionOptions(), [])
    vlm = FakeVLM([(SCRIPT[:70], True)])
    ((_, rec),) = generate._generate(vlm, plan, CaptionOptions(), reqs)
    assert vlm.calls[0][1] == vript.VRIPTOR_DECODING and vlm.calls[0][0][0].system is None
    assert generate.split_script(plan, rec, []) == [rec] and rec["caption"]["content"] == vript.clean_text(SCRIPT[:70])
    ((_, rec),) = generate._generate(FakeVLM([(SCRIPT, False)]), plan, CaptionOptions(), reqs)
    scenes = generate.split_script(plan, rec, [(1.0, 2.0, "hello")])
    assert [(s["clip_id"], s["start"], s["end"], s["caption"]["scene_title"], s["caption"]["content"])
            for s in scenes] == [("v-Scene-001", 0.0, 1.2, "Red room", "A red room."),
                                 ("v-Scene-002", 1.2, 5.0, "Green room", "A green room.")]
    assert [s["voiceover"] for s in scenes] == [["hello"], ["hello"]]
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == [(0, 29), (28, 120)]
    # the 64 frames (get_seq_frames of 120) are shared out by time, with their thumbnails
    assert sum(s["sampling"]["frames"] for s in scenes) == 64 == sum(len(s["thumbnails"]) for s in scenes)
    assert all(s["start"] <= t < s["end"] for s in scenes for t in s["sampling"]["timestamps"])


def test_cut_off_detection():
    from vsuite.models.vlm import cut_off

    rows = [[5, 6, 7, 8], [5, 2, 0, 0], [5, 6, 7, 2]]  # eos = 2, pad = 0
    assert cut_off(rows, {2}, 4) == [True, False, False]
    assert cut_off([[5, 6]], {2}, 4) == [False]  # stopped early by something else: not the limit
