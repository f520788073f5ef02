"""caption/asr.py and Vript's ASR records: whole-video Whisper segments attached to the clips they overlap.

Expected values are written by hand from Vript's own files (mutonix/Vript@3dd89c7,
vriptor/training_data/videos/vript_long_videos/*/<id>_asr.jsonl and the caption.json beside them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from vsuite.data import vript
from vsuite.tasks.caption import asr, outputs

# ----------------------------------------------------------------------------- attaching segments to clips
# a 12 s video cut at 4 s and 10 s; the last clip is silent
SPANS = {"v-Scene-001": (0.0, 4.0), "v-Scene-002": (4.0, 10.0), "v-Scene-003": (10.0, 12.0)}
SEGMENTS = [(0.5, 2.0, " Hello there."), (2.0, 4.0, " Up to the cut."), (3.0, 5.5, " Across the cut,"),
            (6.0, 7.25, " and after it.")]


def test_a_segment_spanning_a_cut_is_attached_to_both_clips():
    first = vript.attach_segments(SEGMENTS, *SPANS["v-Scene-001"])
    second = vript.attach_segments(SEGMENTS, *SPANS["v-Scene-002"])
    assert first == [(0.5, 2.0, " Hello there."), (2.0, 4.0, " Up to the cut."), (3.0, 5.5, " Across the cut,")]
    # on the second clip's clock: the crossing segment starts at 0 (not -1.0) and keeps its end (1.5);
    # a segment that ends exactly at the cut does not belong to the next clip
    assert second == [(0.0, 1.5, " Across the cut,"), (2.0, 3.25, " and after it.")]
    assert vript.attach_segments(SEGMENTS, *SPANS["v-Scene-003"]) == []


def test_asr_record_has_vript_layout_and_full_text():
    rec = vript.asr_record("v-Scene-002", 6.0, vript.attach_segments(SEGMENTS, 4.0, 10.0), "pt")
    assert list(rec) == ["clip_id", "duration", "lang", "scene_text", "full_text"]
    assert rec["lang"] == "pt" and rec["duration"] == 6.0
    assert rec["scene_text"] == [{"span": [0.0, 1.5], "text": " Across the cut,"},
                                 {"span": [2.0, 3.25], "text": " and after it."}]
    # Vript: each segment's text followed by one space (" A  B " for [" A", " B"])
    assert rec["full_text"] == " Across the cut,  and after it. "
    assert vript.clip_voiceover(rec) == ["Across the cut,  and after it."]
    silent = vript.asr_record("v-Scene-003", 2.0, [], "pt")
    assert silent["scene_text"] == [] and silent["full_text"] == "" and vript.clip_voiceover(silent) == [""]


def test_file_names_and_short_video_rule():
    assert (vript.caption_file("abc"), vript.asr_file("abc"), vript.cut_meta_file("abc")) == \
        ("abc_caption.json", "abc_asr.jsonl", "abc_cut_meta.json")
    assert vript.is_short_video(30.0, 1080, 1920) and vript.is_short_video(600.0, 720, 1280)
    assert not vript.is_short_video(600.5, 720, 1280) and not vript.is_short_video(30.0, 1920, 1080)
    assert not vript.is_short_video(30.0, 720, 720)


def test_short_videos_get_no_voiceover_in_the_annotation_prompt(tmp_path):
    from vsuite.media.synth import make_cut_video

    portrait = make_cut_video(tmp_path / "portrait.mp4", num_frames=24, size=(96, 64), cuts=(12,), fade=None)
    landscape = make_cut_video(tmp_path / "landscape.mp4", num_frames=24, size=(64, 96), cuts=(12,), fade=None)
    transcript = asr.Transcript([(0.0, 1.0, " hi")], "en")
    short = SimpleNamespace(duration=1.0, video=portrait.path)
    wide = SimpleNamespace(duration=1.0, video=landscape.path)
    assert asr.prompt_segments(short, transcript, annotation=True) == []  # Vript: no voice-over for shorts
    assert asr.prompt_segments(short, transcript, annotation=False) == [(0.0, 1.0, " hi")]  # Vriptor: always
    assert asr.prompt_segments(wide, transcript, annotation=True) == [(0.0, 1.0, " hi")]
    assert asr.prompt_segments(wide, None, annotation=True) == []


# ----------------------------------------------------------------------------- the files of a run
def _scene(cid, start, end):
    return {"clip_id": cid, "start": start, "end": end, "voiceover": [], "voice_segments": [],
            "caption": {"shot_type": "s", "camera_movement": "m", "content": f"content of {cid}",
                        "scene_title": f"title {cid}"},
            "sampling": {"frames": 3, "backend": "pyav", "resolution": [64, 96]}}


def _plan(out: Path, video: Path, video_id: str = "v"):
    return SimpleNamespace(out=out, video=video, video_id=video_id, title="T", duration=12.0, fps=24.0,
                           dense=True, mode="vript", prompt_family="vript", model_ref="m", family="smolvlm")


def test_outputs_are_named_and_shaped_as_vript(tmp_path):
    out = tmp_path / "out"
    scenes = [_scene(cid, s, e) for cid, (s, e) in SPANS.items()]
    outputs.write_outputs(_plan(out, tmp_path / "v.mp4"), scenes, transcript=asr.Transcript(SEGMENTS, "pt"))
    names = {p.name for p in out.iterdir()}
    assert {"v_caption.json", "v_asr.jsonl", "v_cut_meta.json"} <= names
    assert not {"caption.json", "asr.jsonl", "cut_meta.json"} & names  # one copy: finetune globs *caption.json
    lines = [json.loads(line) for line in (out / "v_asr.jsonl").read_text().splitlines()]
    assert [r["clip_id"] for r in lines] == list(SPANS) and {r["lang"] for r in lines} == {"pt"}
    assert [r["full_text"] for r in lines] == [" Hello there.  Up to the cut.  Across the cut, ",
                                               " Across the cut,  and after it. ", ""]
    video = vript.load_video_annotations(out / "v_caption.json")  # vsuite's own Vript reader
    assert [video.clips[c]["voiceover"] for c in SPANS] == [["Hello there.  Up to the cut.  Across the cut,"],
                                                            ["Across the cut,  and after it."], [""]]
    assert video.asr["v-Scene-002"]["scene_text"][0] == {"span": [0.0, 1.5], "text": " Across the cut,"}
    assert video.span("v-Scene-002") == (4.0, 10.0)
    # without --voiceover: no asr file, and no claim that the clips are silent
    out2 = tmp_path / "out2"
    outputs.write_outputs(_plan(out2, tmp_path / "v.mp4"), scenes, transcript=None)
    assert not (out2 / "v_asr.jsonl").exists()
    assert all(c["voiceover"] == [] for c in vript.load_video_annotations(out2 / "v_caption.json").clips.values())


def test_finetune_reads_what_caption_writes(tmp_path, cut_video):
    """The folder a caption run writes (plus the video) is Vript training data for `vsuite finetune`."""
    from vsuite.data.vript import CaptionDataConfig
    from vsuite.tasks.finetune_caption import _video_clips, build_samples

    out = tmp_path / "data"
    spans = {"planted-Scene-001": (0.0, 1.25), "planted-Scene-002": (1.25, 2.5)}
    scenes = [_scene(cid, s, e) for cid, (s, e) in spans.items()]
    scenes[1]["caption"]["content"] = "A man talks to the camera."  # mentions speech: the voice-over is used
    segs = [(1.0, 1.5, " Across"), (2.0, 2.4, " later")]
    outputs.write_outputs(_plan(out, cut_video.path, "planted"), scenes, transcript=asr.Transcript(segs, "en"))
    shutil.copy(cut_video.path, out / "planted.mp4")
    clips = _video_clips(out / "planted_caption.json")
    assert [(c.cid, c.start, c.end) for c in clips] == [(cid, s, e) for cid, (s, e) in spans.items()]
    assert clips[0].asr == [(1.0, 1.5, " Across")] and clips[1].asr == [(0.0, 0.25, " Across"),
                                                                        (0.75, 1.15, " later")]
    cfg = CaptionDataConfig(root=str(out), min_scenes=1, max_scenes=1, shuffle=False)
    voiced = [s for s in build_samples(clips, cfg) if s.clips[0].cid == "planted-Scene-002"]
    assert voiced and "[0.0, 0.2] Across\n[0.8, 1.1] later" in voiced[0].instruction


# ----------------------------------------------------------------------------- the real Whisper code path
def build_whisper(folder: Path, top_lang: str) -> Path:
    """A tiny multilingual Whisper with timestamp tokens and languages en/pt whose outputs are fixed by hand:
    the decoder's last layer norm has weight 0 and bias v, so every position's logits are W v; W's rows give
    `<|top_lang|>` 2|v|^2, the other language |v|^2, the word " hi" 3|v|^2 and every other token 0."""
    import torch
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizerFast)
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    special = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|pt|>", "<|transcribe|>", "<|translate|>",
               "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]  # <|notimestamps|> last: timestamps follow
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    for tok in ("Ġh", "Ġhi", "<|endoftext|>"):
        vocab[tok] = len(vocab)
    tokenizer = WhisperTokenizerFast(vocab=vocab, merges=[("Ġ", "h"), ("Ġh", "i")], unk_token="<|endoftext|>",
                                     bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": special[1:]})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in special}
    assert ids["<|notimestamps|>"] == len(tokenizer) - 1
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=len(tokenizer) + 1501, num_mel_bins=80, d_model=16, encoder_layers=1,
                           decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=1500,
                           max_target_positions=48, pad_token_id=ids["<|endoftext|>"],
                           bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"],
                           decoder_start_token_id=ids["<|startoftranscript|>"], begin_suppress_tokens=None,
                           suppress_tokens=None)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        v = torch.randn(16)
        model.model.decoder.layer_norm.weight.zero_()
        model.model.decoder.layer_norm.bias.copy_(v)
        model.proj_out.weight.zero_()
        other = "en" if top_lang == "pt" else "pt"
        model.proj_out.weight[ids[f"<|{top_lang}|>"]] = 2 * v
        model.proj_out.weight[ids[f"<|{other}|>"]] = v
        model.proj_out.weight[tokenizer.convert_tokens_to_ids("Ġhi")] = 3 * v
    gen = model.generation_config
    settings = dict(decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
                    pad_token_id=ids["<|endoftext|>"], no_timestamps_token_id=ids["<|notimestamps|>"],
                    lang_to_id={"<|en|>": ids["<|en|>"], "<|pt|>": ids["<|pt|>"]},
                    task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
                    is_multilingual=True, suppress_tokens=[], begin_suppress_tokens=None, forced_decoder_ids=None,
                    max_initial_timestamp_index=50)
    for name, value in settings.items():  # GenerationConfig.update() skips the Whisper-only names
        setattr(gen, name, value)
    gen._from_model_config = False  # else from_pretrained rebuilds it from config.json without the languages
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("top_lang", ["pt", "en"])
def test_whisper_detects_the_language_and_times_the_segments(tmp_path, cut_video, top_lang):
    import torch

    folder = build_whisper(tmp_path / f"whisper-{top_lang}", top_lang)
    duration = cut_video.num_frames / cut_video.fps  # 5 s of a 440 Hz tone
    found = asr.transcribe(cut_video.path, folder, device=torch.device("cpu"), duration=duration)
    assert found.lang == top_lang  # detected by the model, not assumed
    # the model writes " hi" until its 24-token budget ends: one segment from the first timestamp
    # (<|0.00|>) to the end of the audio (the padded 30 s window is cut at the 5 s heard)
    assert len(found.segments) == 1
    start, end, text = found.segments[0]
    assert start == 0.0 and end == pytest.approx(duration, abs=0.05)
    assert text.startswith(" hi") and set(text.split()) == {"hi"} and len(text.split()) == 23

    # the caption run's cache: the second call does not transcribe again
    plan = SimpleNamespace(out=tmp_path / "out", video=cut_video.path, asr_dir=folder, device=torch.device("cpu"),
                           duration=duration)
    first = asr.voiceover(plan, "tiny")
    again = asr.voiceover(plan, "tiny", transcribe_fn=lambda *a, **k: pytest.fail("transcribed twice"))
    assert (again.segments, again.lang) == (first.segments, first.lang) == (found.segments, top_lang)


def test_long_audio_is_transcribed_in_blocks(tmp_path, cut_video, monkeypatch):
    """Blocks of BLOCK_S seconds: a block keeps the segments that begin before its last 30 s window and the
    next block starts where the last kept segment ends (no segment twice, none lost)."""
    import torch

    folder = build_whisper(tmp_path / "whisper", "pt")
    monkeypatch.setattr(asr, "BLOCK_S", 2.0)
    duration = cut_video.num_frames / cut_video.fps
    found = asr.transcribe(cut_video.path, folder, device=torch.device("cpu"), duration=duration)
    assert found.lang == "pt"
    spans = [(s, e) for s, e, _ in found.segments]
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(duration, abs=0.05)
    assert all(a[1] <= b[0] + 1e-6 for a, b in zip(spans, spans[1:]))  # in order, no overlap
