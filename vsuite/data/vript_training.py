"""Vriptor's finetuning-data rules, one small pure function each (reference: /work/shared/reference/vript-favd.md §1.7).

Source: mutonix/Vript at 3dd89c7, vriptor/build_vript_training_data/build_training_vript_stage{1,2}_{single,concat}.py,
cited below as s1s, s1c, s2s, s2c with their line numbers. Stage 1 trains on every clip (single) plus windows of
1-6 successive scenes (concat); stage 2 on clips of >= 9 s (most short ones dropped) plus windows of 2-20 scenes
(most short windows dropped, ASR segments merged, the voice-over kept with p = 0.3).

Every random rule takes the `random.Random` it draws from and draws exactly what the builders draw, in the same
order (the builders use the module-level `random` seeded with 42), so a caller that passes `random.Random(42)`
walks the same sequence. Segments are (start, end, text) tuples, seconds relative to their clip.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import DataError
from .vript import mentions_voice

Segment = tuple[float, float, str]

# s1c:54 and s1c:68: stage-1 window lengths 1..6 scenes, weights 1, 2, 3, 4, 3, 2 (sum 15)
STAGE1_LENGTHS = (1, 2, 3, 4, 5, 6)
STAGE1_WEIGHTS = (1, 2, 3, 4, 3, 2)
# s2c:54 and s2c:70: stage-2 window lengths 2..20, flat for 2..8 then a bell peaking at 14 (sum 55)
STAGE2_LENGTHS = tuple(range(2, 21))
STAGE2_WEIGHTS = (1,) * 7 + (2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1)
MERGE_WORDS = 15  # s2c:14
MAX_VOICEOVER_WORDS = 2048  # s2c:118
STAGE2_VOICEOVER_P = 0.3  # s2c:130
SHORT_DROP_P = 0.9  # s2c:127 and s2s:94: `if random.random() < 0.9: continue` (kept with p = 0.1)


def _check_stage(stage: int) -> None:
    if stage not in (1, 2):
        raise ValueError(f"Vript training stage must be 1 or 2, got {stage}")


def scene_number(clip_id: str) -> int:
    """`<video_id>-Scene-NNN` -> NNN as an int (s1c:60, s1c:72: `int(key.split("-Scene-")[-1])`)."""
    tail = clip_id.rsplit("-Scene-", 1)
    try:
        if len(tail) != 2:
            raise ValueError
        return int(tail[1])
    except ValueError:
        raise DataError(f"clip id {clip_id!r} is not Vript's <video_id>-Scene-NNN; Vript's window rules need "
                        f"scene numbers") from None


def sort_by_scene_number(clip_ids: Sequence[str]) -> list[str]:
    """Clip ids in numeric scene order, so Scene-1000 follows Scene-999 (s1c:60, s1s:65, s2c:62, s2s:65)."""
    return sorted(clip_ids, key=scene_number)


def window_cap(num_scenes: int, stage: int) -> int:
    """How many windows a video draws: min(30, int(n // 1.5)) in stage 1 (s1c:63), min(120, int(n // 1.2)) in
    stage 2 (s2c:65). Draws that fail a check are not redrawn, so a video yields at most this many windows."""
    _check_stage(stage)
    return min(30, int(num_scenes // 1.5)) if stage == 1 else min(120, int(num_scenes // 1.2))


def draw_window_start(rng: random.Random, num_scenes: int) -> int:
    """Index of a window's first scene, uniform in 0..n-2 (s1c:67, s2c:69): a window never starts at the last
    scene."""
    return rng.randint(0, num_scenes - 2)


def draw_window_length(rng: random.Random, stage: int) -> int:
    """A window length drawn with the stage's weights (s1c:68 with s1c:54; s2c:70 with s2c:54)."""
    _check_stage(stage)
    lengths, weights = (STAGE1_LENGTHS, STAGE1_WEIGHTS) if stage == 1 else (STAGE2_LENGTHS, STAGE2_WEIGHTS)
    return rng.choices(lengths, weights=weights)[0]


def window_fits(start: int, length: int, num_scenes: int) -> bool:
    """The window ends inside the video (s1c:69-70, s2c:71-72)."""
    return start + length <= num_scenes


def window_has_no_missing_scene(scene_numbers: Sequence[int], start: int, length: int) -> bool:
    """Scene numbers (sorted) of the window's first and last clip span exactly `length` numbers, so no scene is
    missing inside it (s1c:72-75, s2c:74-77). `scene_numbers` are those of the sorted clips; the window must fit."""
    return scene_numbers[start + length - 1] - scene_numbers[start] + 1 == length


def sample_windows(rng: random.Random, scene_numbers: Sequence[int], stage: int) -> list[tuple[int, int]]:
    """The (start, end) clip-index windows of one video (s1c:63-78, s2c:65-80): window_cap draws of a start then a
    length; a draw that overruns the video or spans a missing scene number is dropped, not redrawn. Repeats are
    kept, as in the builders."""
    n = len(scene_numbers)
    out = []
    if n < 2:  # cap is 0 for one scene; randint(0, -1) would fail
        return out
    for _ in range(window_cap(n, stage)):
        start = draw_window_start(rng, n)
        length = draw_window_length(rng, stage)
        if window_fits(start, length, n) and window_has_no_missing_scene(scene_numbers, start, length):
            out.append((start, start + length))
    return out


def window_has_asr_records(has_record: Sequence[bool]) -> bool:
    """A window is built only when every clip has a line in <video_id>_asr.jsonl: the builders skip a video
    without the file (s1c:80-83, s2c:82-85) and drop a window on the KeyError of a missing clip (s1c:89-104,
    s2c:91-106)."""
    return all(has_record)


def single_clip_has_asr_record(has_record: bool) -> bool:
    """A single-clip sample needs the clip's asr.jsonl line (s1s:59-62 and s1s:69-74, s2s:59-62 and s2s:70-75)."""
    return bool(has_record)


def merge_asr_segments(segments: Sequence[Segment], max_words: int = MERGE_WORDS) -> list[Segment]:
    """Stage-2 windows (s2c:8-27, applied at s2c:96; commented out in the other three builders): segments are
    gathered until their joined text has more than 15 whitespace-separated words, then emitted as one segment
    spanning them; the rest is emitted at the end. Texts are joined with one space, unstripped, as the source."""
    merged, waiting = [], []
    for seg in segments:
        waiting.append(seg)
        text = " ".join(t for _, _, t in waiting)
        if len(text.split()) > max_words:
            merged.append((waiting[0][0], waiting[-1][1], text))
            waiting = []
    if waiting:
        merged.append((waiting[0][0], waiting[-1][1], " ".join(t for _, _, t in waiting)))
    return merged


def concat_voiceover_segments(per_scene: Sequence[Sequence[Segment]], durations: Sequence[float], *,
                              official_compat: bool = False) -> list[Segment]:
    """The window's segments on the joined timeline: each scene's spans shifted by the scene's start (the sum of
    the durations before it).

    official_compat: shift as s1c:98-102 / s2c:100-104 do, by `end_time_of_prev_scene`, which is the shifted end
    of the previous scene's *last segment*, not its end (a silent scene leaves it unchanged; the builders'
    `span` then even carries over from an earlier window). The spans drift before the real scene starts
    whenever speech ends before its scene does, so the default is the scene start."""
    out, offset, prev_end = [], 0.0, 0.0
    for segs, dur in zip(per_scene, durations):
        shift = prev_end if official_compat else offset
        for s, e, t in segs:
            out.append((s + shift, e + shift, t))
            prev_end = e + shift
        offset += dur
    return out


def single_clip_duration(duration: float, segments: Sequence[Segment]) -> float:
    """A clip's duration as the single builders take it: the longer of the clip and its last speech end, to 0.1 s
    (s1s:72, s1s:80, s1s:85; s2s:73, s2s:81, s2s:86)."""
    return round(max([float(duration)] + [float(e) for _, e, _ in segments]), 1)


def keep_single_clip(rng: random.Random, duration: float) -> bool:
    """Stage-2 single clips (s2s:88-95): shorter than 9 s -> dropped (no draw); a sampling rate round(D / 64, 2)
    below 2 s/frame (D < 127.68 s) -> kept with p = 0.1 (one draw); longer -> kept (no draw)."""
    if duration < 9:
        return False
    if round(duration / 64, 2) < 2:
        return rng.random() >= SHORT_DROP_P
    return True


def keep_window(rng: random.Random, duration: float, num_scenes: int) -> bool:
    """Stage-2 windows (s2c:126-128): shorter than 600 s, or under 50 s per scene -> kept with p = 0.1 (one draw);
    otherwise kept (no draw). `duration` is the window's total, rounded to 0.1 s as at s2c:108."""
    if duration / num_scenes < 50 or duration < 600:
        return rng.random() >= SHORT_DROP_P
    return True


def drop_long_voiceover(voiceover: str, max_words: int = MAX_VOICEOVER_WORDS) -> str:
    """Stage-2 windows (s2c:118-121): a voice-over of more than 2048 words is removed (""). Words are counted as
    the source counts them, `len(text.split(" "))`: newlines do not separate words, a trailing space adds one."""
    return "" if len(voiceover.split(" ")) > max_words else voiceover


def use_voiceover(rng: random.Random | None, voiceover: str, target: str, keep_p: float = 1.0, *,
                  mention_needed: bool = True) -> bool:
    """The voice-over goes into the instruction when there is one and the target mentions speech ("voice" and
    "over", "voicing", "narrat", "speak", "talk", "say"; s1c:117, s1s:87, s2s:97). Stage-2 windows keep it only
    with p = 0.3 (s2c:130, keep_p=STAGE2_VOICEOVER_P): one draw, made only when the first test passes.
    mention_needed=False (vsuite's data.voiceover_always) skips the mention test."""
    if not (voiceover and (mentions_voice(target) or not mention_needed)):
        return False
    return keep_p >= 1.0 or rng.random() < keep_p
