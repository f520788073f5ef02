"""The HTML storyboard on hand-made scene records: structure, then layout in headless Chromium."""

import re

import numpy as np
import pytest
from caption_browser import render

from vsuite.tasks.caption.storyboard import clock, thumbnail_uri, to_html

LONG_WORD = "Supercalifragilistic" * 15  # 300 characters without a break opportunity
PROTOCOL = {"protocol": "vript", "backend": "pyav", "fps": 30.0, "resolution": [360, 640], "model": "tiny",
            "family": "smolvlm", "dense": True, "frames_per_scene": [3, 4, 3]}


def _scene(cid, start, end, stamps, *, shot="", camera="", content="", title="", voiceover=(), segments=()):
    return {"clip_id": cid, "start": start, "end": end,
            "caption": {"shot_type": shot, "camera_movement": camera, "content": content, "scene_title": title},
            "voiceover": list(voiceover), "voice_segments": [list(s) for s in segments],
            "sampling": {"frames": len(stamps), "indices": [int(t * 30) for t in stamps], "timestamps": stamps}}


@pytest.fixture(scope="module")
def page():
    scenes = [
        _scene("talk-Scene-001", 0.0, 4.0, [0.8, 2.0, 3.2], shot="Medium shot, centred", camera="Slow pan left",
               content=f"A presenter beside a chart. {LONG_WORD}", title="The chart",
               voiceover=["Welcome back", "to the results"], segments=[(0.5, 2.0, "Welcome back"),
                                                                       (2.0, 4.0, "to the results")]),
        _scene("talk-Scene-002", 4.0, 16.0, [5.8, 8.8, 11.2, 14.2], content="<script>alert(1)</script> & more",
               title="No shot, no camera"),
        _scene("talk-Scene-003", 16.0, 20.0, [16.8, 18.0, 19.2], shot="Close-up", content="Hands on a keyboard.",
               title="Typing", voiceover=["https://example.com/" + "a/" * 80 + "end"]),
    ]
    rng = np.random.default_rng(0)
    thumbs = {s["clip_id"]: [thumbnail_uri(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8))
                             for _ in s["sampling"]["timestamps"]] for s in scenes}
    return scenes, to_html(scenes, thumbs, video="talk.mp4", title="Quarterly results", duration=20.0,
                           protocol=PROTOCOL)


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"(?=<section class='scene' id=')", text)
    return {re.match(r"<section class='scene' id='([^']+)'", p).group(1): p.split("</section>")[0]
            for p in parts[1:]}


def test_scene_cards_show_only_what_the_model_gave(page):
    scenes, text = page
    cards = _sections(text)
    assert list(cards) == [s["clip_id"] for s in scenes]
    one, two, three = cards.values()
    assert "<b>Shot</b>Medium shot, centred" in one and "<b>Camera</b>Slow pan left" in one
    assert "<b>Shot</b>" not in two and "<b>Camera</b>" not in two and "class='facts'" not in two
    assert "<b>Shot</b>Close-up" in three and "<b>Camera</b>" not in three
    # the voice-over, per scene, with each segment's time in the video
    assert "<span class='t'>0:00.5</span> Welcome back" in one and "<span class='t'>0:02.0</span> to the results" in one
    assert "Voice-over" not in two
    assert "example.com/a/a/" in three and "Voice-over" in three
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in two and "<script" not in text
    # every frame the model saw, with its time
    assert one.count("<img ") == 3 and two.count("<img ") == 4 and "0:05.8</figcaption>" in two


def test_timeline_and_protocol(page):
    scenes, text = page
    segs = re.findall(r"<a class='seg' href='#([^']+)' style='flex-grow:([0-9.]+);", text)
    assert [cid for cid, _ in segs] == [s["clip_id"] for s in scenes]
    assert [float(g) for _, g in segs] == pytest.approx([0.2, 0.6, 0.2])  # durations 4, 12, 4 of 20 s
    assert text.index("class='timeline'") < text.index("<section")
    # the raw protocol is folded away at the end, not at the top
    details = text.index("<details")
    assert details > text.rindex("</section>") and text.index("&quot;backend&quot;: &quot;pyav&quot;") > details
    assert "open" not in text[details:text.index(">", details)]
    # self-contained
    assert "src='http" not in text and "<link" not in text and text.count("data:image/jpeg;base64,") == 10
    assert "overflow-wrap:anywhere" in text


def test_clock():
    assert clock(0) == "0:00.0" and clock(75.3) == "1:15.3" and clock(599.96) == "10:00.0"
    assert clock(3725.4) == "1:02:05.4" and clock(5.0, long=True) == "0:00:05.0"


def test_long_words_wrap_in_chromium(page, tmp_path):
    _, text = page
    good = tmp_path / "storyboard.html"
    good.write_text(text)
    check = render(good, tmp_path)
    assert check["images"] == check["loaded"] == 10
    assert check["doc_width"] <= check["viewport"] == 1280, check
    assert check["spill"] == [], check
    assert check["details_open"] is False and "Welcome back" in check["text"]
    # the measurement can fail: without the wrapping rule the 300-character word sticks out of its paragraph
    bad = tmp_path / "nowrap.html"
    bad.write_text(text.replace("overflow-wrap:anywhere", "overflow-wrap:normal"))
    check = render(bad, tmp_path)
    assert any(s.startswith("p.content") for s in check["spill"]) or check["doc_width"] > check["viewport"], check
