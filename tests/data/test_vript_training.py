"""Vriptor's finetuning-data rules (vsuite.data.vript_training) against hand-computed expectations."""

import random
from collections import Counter

import pytest

from vsuite.data import vript_training as T
from vsuite.errors import DataError

DRAWS = 20000


def test_scene_numbers_sort_numerically():
    assert T.scene_number("0J7UPHL08fU-Scene-012") == 12
    assert T.scene_number("a-Scene-b-Scene-7") == 7
    assert T.sort_by_scene_number(["v-Scene-1000", "v-Scene-999", "v-Scene-002"]) == \
        ["v-Scene-002", "v-Scene-999", "v-Scene-1000"]
    with pytest.raises(DataError):
        T.scene_number("clip_3")


@pytest.mark.parametrize("stage, expected", [
    (1, {1: 1 / 15, 2: 2 / 15, 3: 3 / 15, 4: 4 / 15, 5: 3 / 15, 6: 2 / 15}),
    (2, {**{k: 1 / 55 for k in range(2, 9)}, 9: 2 / 55, 10: 3 / 55, 11: 4 / 55, 12: 5 / 55, 13: 6 / 55,
         14: 7 / 55, 15: 6 / 55, 16: 5 / 55, 17: 4 / 55, 18: 3 / 55, 19: 2 / 55, 20: 1 / 55}),
])
def test_window_lengths_follow_the_weights(stage, expected):
    counts = Counter()
    for seed in range(40):
        rng = random.Random(seed)
        counts.update(T.draw_window_length(rng, stage) for _ in range(1000))
    assert set(counts) == set(expected)
    for k, p in expected.items():  # 40000 draws: one standard deviation is at most 0.0023
        assert counts[k] / 40000 == pytest.approx(p, abs=0.008), (k, counts[k])


def test_window_count_caps():
    assert [T.window_cap(n, 1) for n in (0, 1, 2, 3, 4, 44, 45, 46, 500)] == [0, 0, 1, 2, 2, 29, 30, 30, 30]
    assert [T.window_cap(n, 2) for n in (1, 2, 3, 12, 143, 144, 145, 1000)] == [0, 1, 2, 10, 119, 120, 120, 120]
    with pytest.raises(ValueError):
        T.window_cap(10, 3)


def test_window_starts_never_at_the_last_scene():
    rng = random.Random(0)
    starts = Counter(T.draw_window_start(rng, 5) for _ in range(4000))
    assert set(starts) == {0, 1, 2, 3}
    assert all(abs(c / 4000 - 0.25) < 0.03 for c in starts.values())


def test_windows_fit_and_never_span_a_missing_scene():
    numbers = [1, 2, 3, 5, 6, 7, 8]  # scene 4 is missing
    assert T.window_fits(5, 2, 7) and not T.window_fits(6, 2, 7)
    assert T.window_has_no_missing_scene(numbers, 0, 3)  # 1 2 3
    assert not T.window_has_no_missing_scene(numbers, 1, 3)  # 2 3 5
    assert T.window_has_no_missing_scene(numbers, 3, 4)  # 5 6 7 8
    seen = set()
    for seed in range(300):
        wins = T.sample_windows(random.Random(seed), numbers, 1)
        assert len(wins) <= T.window_cap(7, 1) == 4
        for a, b in wins:
            assert 0 <= a < b <= 7 and numbers[b - 1] - numbers[a] == b - a - 1, (a, b)
            seen.add((a, b))
    # every window of 1..6 scenes that starts before the last clip and stays on one side of the gap is drawn
    legal = {(a, a + k) for a in range(6) for k in range(1, 7)
             if a + k <= 7 and numbers[a + k - 1] - numbers[a] == k - 1}
    assert seen == legal
    assert T.sample_windows(random.Random(0), [1], 1) == [] and T.sample_windows(random.Random(0), [], 2) == []


def test_stage2_windows_have_2_to_20_scenes():
    numbers = list(range(1, 61))
    lengths = Counter()
    for seed in range(50):
        wins = T.sample_windows(random.Random(seed), numbers, 2)
        assert len(wins) <= 50  # min(120, 60 // 1.2)
        lengths.update(b - a for a, b in wins)
    assert min(lengths) >= 2 and max(lengths) <= 20 and lengths[14] > lengths[3]


def test_asr_records_are_required():
    assert T.window_has_asr_records([True, True]) and not T.window_has_asr_records([True, False])
    assert T.single_clip_has_asr_record(True) and not T.single_clip_has_asr_record(False)


def test_asr_segments_merge_past_15_words():
    segs = [(0.0, 1.0, " a b c"), (1.0, 2.5, " d e f g h i j k l m n o p"), (2.5, 3.0, " q r"), (3.0, 4.0, " s")]
    # 3 words, then 3 + 13 = 16 > 15 -> flushed as one segment; "q r" + "s" = 3 words flushed at the end
    assert T.merge_asr_segments(segs) == [(0.0, 2.5, " a b c  d e f g h i j k l m n o p"), (2.5, 4.0, " q r  s")]
    fifteen = [(0.0, 1.0, " ".join("w" * 15)), (1.0, 2.0, "x")]
    assert T.merge_asr_segments(fifteen[:1]) == fifteen[:1]  # exactly 15 words: not flushed early
    assert T.merge_asr_segments(fifteen) == [(0.0, 2.0, " ".join("w" * 15) + " x")]
    long = [(0.0, 5.0, " ".join("w" * 20)), (5.0, 6.0, "y")]
    assert T.merge_asr_segments(long) == long  # a long segment is emitted alone
    assert T.merge_asr_segments([]) == []


def test_voiceover_spans_on_the_joined_timeline():
    per_scene = [[(0.5, 1.0, "a")], [], [(0.0, 2.0, "b"), (3.0, 4.0, "c")]]
    durations = [4.0, 3.0, 5.0]
    assert T.concat_voiceover_segments(per_scene, durations) == \
        [(0.5, 1.0, "a"), (7.0, 9.0, "b"), (10.0, 11.0, "c")]
    # the builders shift by the end of the previous scene's last segment (1.0), not by the scene start (7.0)
    assert T.concat_voiceover_segments(per_scene, durations, official_compat=True) == \
        [(0.5, 1.0, "a"), (1.0, 3.0, "b"), (4.0, 5.0, "c")]


def test_single_clip_duration():
    assert T.single_clip_duration(10.04, []) == 10.0
    assert T.single_clip_duration(10.0, [(0.0, 2.0, "a"), (9.0, 12.37, "b")]) == 12.4


def _frequency(rule, *args):
    rng = random.Random(7)
    return sum(rule(rng, *args) for _ in range(DRAWS)) / DRAWS


def test_short_single_clips_are_dropped():
    rng = random.Random(0)
    state = rng.getstate()
    assert not T.keep_single_clip(rng, 8.9) and rng.getstate() == state  # < 9 s: dropped, no draw
    assert T.keep_single_clip(rng, 128.0) and T.keep_single_clip(rng, 127.7) and rng.getstate() == state
    # 127.7 / 64 = 1.995 rounds to 2.0 (kept); 127.6 / 64 = 1.994 -> 1.99 < 2: kept with p = 0.1
    for d in (9.0, 60.0, 127.6):
        assert _frequency(T.keep_single_clip, d) == pytest.approx(0.1, abs=0.01), d


def test_short_windows_kept_with_p_01():
    rng = random.Random(0)
    state = rng.getstate()
    assert T.keep_window(rng, 600.0, 12) and T.keep_window(rng, 1000.0, 3) and rng.getstate() == state
    for total, n in ((599.9, 2), (650.0, 14), (30.0, 3)):  # < 600 s, or < 50 s per scene
        assert _frequency(T.keep_window, total, n) == pytest.approx(0.1, abs=0.01), (total, n)


def test_over_long_voiceovers_are_removed():
    assert T.drop_long_voiceover(" ".join(["w"] * 2048)) == " ".join(["w"] * 2048)
    assert T.drop_long_voiceover(" ".join(["w"] * 2049)) == ""
    assert T.drop_long_voiceover("w " * 2048) == ""  # the trailing space is a 2049th "word", as in the source
    assert T.drop_long_voiceover("\n".join(["w"] * 3000)) != ""  # newlines do not count


def test_voiceover_use():
    rng = random.Random(0)
    state = rng.getstate()
    assert T.use_voiceover(rng, "[0.0, 1.0] hi", "A man talks to the camera.")
    assert T.use_voiceover(rng, "[0.0, 1.0] hi", "The voice-over explains.")
    assert not T.use_voiceover(rng, "[0.0, 1.0] hi", "A red room.")
    assert not T.use_voiceover(rng, "", "A man says hi.")
    assert not T.use_voiceover(rng, "[0.0, 1.0] hi", "A red room.", T.STAGE2_VOICEOVER_P)
    assert T.use_voiceover(rng, "[0.0, 1.0] hi", "A red room.", mention_needed=False)
    assert rng.getstate() == state  # no draw unless the voice-over qualifies and p < 1
    assert _frequency(T.use_voiceover, "[0.0, 1.0] hi", "A narrator speaks.", 0.3) == pytest.approx(0.3, abs=0.015)


# ----------------------------------------------------------------------------- the finetune's samples
def _vript_folder(root, durations, *, missing=(), no_asr=(), speech=None):
    """A Vript-format folder without decoding: cut times on an (empty) long video, one scene per duration,
    scene numbers in `missing` skipped, clips in `no_asr` without an asr.jsonl line."""
    from vsuite.data import vript

    root.mkdir(parents=True, exist_ok=True)
    (root / "vid.mp4").write_bytes(b"")
    clips, spans, asr, t, number = {}, {}, [], 0.0, 0
    for i, d in enumerate(durations):
        number += 1
        while number in missing:
            number += 1
        cid = f"vid-Scene-{number:03d}"
        says = speech is not None
        cap = {"content": f"Scene {number}: a man says hello." if says else f"Scene {number}: a red room.",
               "scene_title": f"T{number}"}
        clips[cid] = vript.clip_record("vid", cid, "V", cap, [])
        spans[cid] = (t, t + d)
        t += d
        if number not in no_asr:
            asr.append(vript.asr_record(cid, d, speech or []))
    vript.atomic_write_json(root / "vid_caption.json", vript.caption_json("vid", "V", clips))
    vript.atomic_write_json(root / "vid_cut_meta.json", vript.cut_meta(spans))
    vript.write_asr_jsonl(root / "vid_asr.jsonl", asr)
    return root / "vid_caption.json"


def _scene(clip):
    return T.scene_number(clip.cid)


def test_stage1_samples(tmp_path):
    from vsuite.data.vript import CaptionDataConfig
    from vsuite.tasks.finetune_caption import _video_clips, build_samples

    path = _vript_folder(tmp_path, [5.0] * 14, missing={6}, no_asr={10})
    clips = _video_clips(path)
    cfg = CaptionDataConfig(root="x", stage=1)
    samples = build_samples(clips, cfg, seed=3)
    singles = [s for s in samples if len(s.clips) == 1]
    # every clip with an ASR line alone, in scene order; then at most min(30, 14 // 1.5) = 9 windows
    assert [_scene(s.clips[0]) for s in singles[:13]] == [1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 15]
    assert singles[0].target == "Scene 1: a red room." and len(samples) - 13 <= 9
    for s in samples[13:]:
        nums = [_scene(c) for c in s.clips]
        assert 1 <= len(nums) <= 6 and nums == list(range(nums[0], nums[0] + len(nums))), nums
        assert 10 not in nums  # no ASR line: the window is dropped
    assert [s.target for s in build_samples(clips, cfg, seed=3)] == [s.target for s in samples]
    windows = Counter()
    for seed in range(40):
        windows.update(len(s.clips) for s in build_samples(clips, cfg, seed=seed)[13:])
    assert set(windows) >= {2, 3, 4} and max(windows) <= 6


def test_stage2_samples(tmp_path):
    from vsuite.data.vript import CaptionDataConfig
    from vsuite.tasks.finetune_caption import _video_clips, build_samples

    words = [(0.0, 1.0, " one two three four five six seven eight"), (1.0, 2.0, " nine ten eleven twelve"),
             (2.0, 3.0, " thirteen fourteen fifteen sixteen"), (3.0, 4.0, " again")]
    # 130 s scenes: sampling rate 2.03 s/frame, so every clip is kept alone, and windows of 5+ scenes (>= 650 s,
    # 130 s per scene) are kept; the 4 s scenes are never kept alone and windows holding them mostly dropped
    durations = [130.0] * 24 + [4.0] * 6
    path = _vript_folder(tmp_path, durations, speech=words)
    clips = _video_clips(path)
    cfg = CaptionDataConfig(root="x", stage=2)
    voiced = unvoiced = 0
    short_windows, long_windows = 0, 0
    for seed in range(30):
        samples = build_samples(clips, cfg, seed=seed)
        assert [_scene(s.clips[0]) for s in samples[:24]] == list(range(1, 25))
        assert all(len(s.clips) > 1 for s in samples[24:])
        for s in samples[24:]:
            assert 2 <= len(s.clips) <= 20
            total = sum(c.end - c.start for c in s.clips)
            if total < 600 or total / len(s.clips) < 50:
                short_windows += 1
            else:
                long_windows += 1
            if s.instruction.startswith("Voiceover:"):
                voiced += 1
                # merged past 15 words: the first three segments become one line spanning [0.0, 3.0]
                d0 = s.clips[0].end - s.clips[0].start
                assert "[0.0, 3.0] one two three four five six seven eight  nine ten eleven twelve  thirteen " \
                       f"fourteen fifteen sixteen\n[3.0, 4.0] again\n[{d0:.1f}, {d0 + 3:.1f}] one" in s.instruction
            else:
                unvoiced += 1
    assert long_windows > 5 * short_windows > 0  # short windows survive with p = 0.1
    assert 0.15 < voiced / (voiced + unvoiced) < 0.45  # voice-over used with p = 0.3


def test_stage_options_are_checked():
    from pydantic import ValidationError

    from vsuite.data.vript import CaptionDataConfig

    assert CaptionDataConfig().stage == 0
    with pytest.raises(ValidationError, match="max_scenes: for stage = 0 only"):
        CaptionDataConfig(stage=2, max_scenes=6)
    with pytest.raises(ValidationError):
        CaptionDataConfig(stage=3)
