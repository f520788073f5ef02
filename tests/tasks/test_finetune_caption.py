"""`vsuite finetune` with kind "caption": a tiny random SmolVLM2 learns a tiny Vript-format folder (LoRA, merged
on save), and the saved model captions with `vsuite caption --model`."""

import json

import pytest
from helpers import run_vsuite
from tiny_vlm import smolvlm_dir  # noqa: F401  (fixture)

from vsuite.data import vript
from vsuite.media.synth import make_cut_video

THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CONTENT = ["A red room with a grey square.", "A green room, the square moves.", "A blue room; the narrator says hi.",
           "A dark room fades in."]


def make_vript_folder(root):
    root.mkdir(parents=True, exist_ok=True)
    planted = make_cut_video(root / "vid.mp4", tone_hz=440.0)
    bounds = planted.scene_starts + [planted.num_frames]
    clips, spans, asr = {}, {}, []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        cid = vript.clip_id("vid", i)
        cap = {"shot_type": "Wide shot", "camera_movement": "Static", "content": CONTENT[i], "scene_title": f"Room {i}"}
        clips[cid] = vript.clip_record("vid", cid, "Rooms", cap, ["hi"] if i == 2 else [])
        spans[cid] = (a / planted.fps, b / planted.fps)
        asr.append(vript.asr_record(cid, (b - a) / planted.fps, [(0.0, 0.5, "hi there")] if i == 2 else []))
    vript.atomic_write_json(root / "vid_caption.json", vript.caption_json("vid", "Rooms", clips))
    vript.atomic_write_json(root / "vid_cut_meta.json", vript.cut_meta(spans))
    vript.write_asr_jsonl(root / "vid_asr.jsonl", asr)
    return planted


def test_samples_follow_the_three_paradigms(tmp_path):
    from vsuite.data.vript import CaptionDataConfig
    from vsuite.tasks.finetune_caption import _video_clips, build_samples, load_sample_frames

    make_vript_folder(tmp_path / "data")
    clips = _video_clips(tmp_path / "data" / "vid_caption.json")
    samples = build_samples(clips, CaptionDataConfig(root="x", min_scenes=1, max_scenes=3))
    assert len(samples) == 4 + 3 + 2
    single = samples[0]
    assert single.target == CONTENT[0] and single.instruction.startswith("Describe the video in detail (Duration:")
    multi = next(s for s in samples if len(s.clips) == 3 and s.clips[0].cid == "vid-Scene-002")
    assert multi.target.startswith("[Scene 1/3: Room 1](Duration: [0.0, 1.2]/")
    assert "[Scene 3/3: Room 3](Duration: [" in multi.target
    assert multi.instruction.startswith('Voiceover:"[1.2, 1.8] hi there\n". Based on the video and voiceover, describe '
                                        "the video scene by scene in detail (Duration: [0.0, ")
    frames, indices, fps, total = load_sample_frames(multi)
    assert frames.shape[0] == 9 and indices == sorted(indices) and total == pytest.approx(
        sum(c.end - c.start for c in multi.clips))


def test_finetune_lowers_loss_and_model_captions(tmp_path, smolvlm_dir):
    planted = make_vript_folder(tmp_path / "data")
    out = tmp_path / "run"
    res = run_vsuite("finetune", "finetune/vriptor-tiny-cpu", f'model.init="{smolvlm_dir}"',
                     f'data.root="{tmp_path / "data"}"', "--out", str(out), env=THREADS)
    assert res.code == 0, res.stderr
    assert res.stdout.strip() == str(out / "model")
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[-1] < 0.7 * losses[0], losses
    assert (out / "model" / "config.json").is_file() and not (out / "model" / "adapter_config.json").exists()
    # more steps on the same run folder: resumes from the step-30 checkpoint (LoRA state included)
    again = run_vsuite("finetune", "finetune/vriptor-tiny-cpu", f'model.init="{smolvlm_dir}"',
                       f'data.root="{tmp_path / "data"}"', "train.steps=32", "--out", str(out), env=THREADS)
    assert again.code == 0 and "resuming from" in again.stderr and "(step 30)" in again.stderr, again.stderr
    # the model folder records the question it was trained on; `caption` asks it that, with no flag
    record = json.loads((out / "model" / vript.CAPTION_RECORD).read_text())
    assert record["mode"] == "vriptor" and record["prompt_family"] == "vriptor-stage2"
    cap = run_vsuite("caption", str(planted.path), "--model", str(out / "model"), "--out",
                     str(tmp_path / "cap"), "--max-new-tokens", "12", "--device", "cpu", env=THREADS)
    assert cap.code == 0, cap.stderr
    doc = json.loads((tmp_path / "cap" / "vid_caption.json").read_text())
    assert doc["meta"]["mode"] == record["mode"] and doc["meta"]["prompt_family"] == record["prompt_family"]
    scene = json.loads(next((tmp_path / "cap" / "scenes").glob("*.json")).read_text())
    asked = "Describe the video scene by scene in detail (Duration: [0.0, 5.0]s, Sampling Rate: 0.08s/frame)."
    assert scene["prompt"] == "<video>" + asked and scene["system_prompt"] is None
    assert scene["sampling"]["frames"] == 64  # the whole video, get_seq_frames
    # the stage-2 wording and no system prompt, as in training
    assert vript.vriptor_prompt(5.0, 64, scene_by_scene=True, family=record["prompt_family"]) == asked
    # 12 tokens cut the random model's answer off: one whole-video record, reported, not split or parsed
    assert doc["meta"]["num_clips"] == 1 and next(iter(doc["data"].values()))["truncated"] is True
    assert "cut off at --max-new-tokens 12" in cap.stderr
