"""caption/outputs.py: the text writers and OutputGuard, which takes a failed run's files back."""

from vsuite.tasks.caption.outputs import OutputGuard, to_markdown, to_srt, to_vtt


def _scene(cid, start, end, **caption):
    cap = {"shot_type": "", "camera_movement": "", "content": "c", "scene_title": "t", **caption}
    return {"clip_id": cid, "start": start, "end": end, "caption": cap, "voiceover": []}


def test_markdown_and_subtitles():
    scenes = [_scene("v-Scene-001", 0.0, 2.0, shot_type="Wide shot"),
              {**_scene("v-Scene-002", 2.0, 2.0, content="a --> b"), "voiceover": ["hello", "there"]}]
    md = to_markdown(scenes, video="v.mp4", title="T", duration=2.0, protocol={"fps": 24.0})
    assert "## [Scene 1/2: t](Duration: [0.0, 2.0]/2.0s)" in md and "- Shot type: Wide shot" in md
    assert "Camera movement" not in md and md.count("Shot type") == 1  # empty fields get no line
    assert "> Voice-over: hello there" in md and md.rstrip().endswith('Sampling: {"fps": 24.0}')
    srt = to_srt(scenes)
    assert "00:00:02,000 --> 00:00:02,001" in srt  # a zero-length scene still gets a cue
    vtt = to_vtt(scenes, note="sampling {\"a\": 1}")
    assert vtt.startswith('WEBVTT\n\nNOTE sampling {"a": 1}\n\n1\n00:00:00.000 --> 00:00:02.000\n')
    assert "a -> b" in vtt and "a --> b" not in vtt  # "-->" inside a cue would end its text


def test_guard_removes_a_folder_the_run_created(tmp_path):
    out, board = tmp_path / "a" / "b" / "out", tmp_path / "boards" / "x" / "s.html"
    guard = OutputGuard(out, [board])
    (out / "scenes").mkdir(parents=True)
    (out / "scenes" / "v-Scene-001.json").write_text("{}")
    board.parent.mkdir(parents=True)
    board.write_text("<html>")
    assert guard.undo() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_guard_keeps_what_existed(tmp_path):
    out = tmp_path / "out"
    (out / "scenes").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "scenes" / "v-Scene-001.json").write_text("old")
    (tmp_path / "s.html").write_text("old page")
    guard = OutputGuard(out, [tmp_path / "s.html"])
    (out / "caption.json").write_text("{}")
    (out / "scenes" / "v-Scene-002.json").write_text("{}")
    (out / "scenes" / ".v-Scene-003.json.tmp123").write_text("{")
    (out / "new" / "deep").mkdir(parents=True)
    (out / "new" / "deep" / "f").write_text("x")
    (tmp_path / ".s.html.tmp42").write_text("<ht")  # an atomic write of the storyboard, cut short
    guard.undo()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "out", "out/notes.txt", "out/scenes", "out/scenes/v-Scene-001.json", "s.html"]
    assert (out / "scenes" / "v-Scene-001.json").read_text() == "old"
    assert (tmp_path / "s.html").read_text() == "old page"


def test_guard_keeps_finished_scenes_when_interrupted(tmp_path):
    out = tmp_path / "run" / "out"
    guard = OutputGuard(out)
    (out / "scenes").mkdir(parents=True)
    (out / "scenes" / "v-Scene-001.json").write_text("{}")
    (out / "scenes" / ".v-Scene-002.json.tmp9").write_text("{")
    (out / "caption.json").write_text("{}")
    assert guard.undo(keep=out / "scenes") == 1
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "run", "run/out", "run/out/scenes", "run/out/scenes/v-Scene-001.json"]
    # interrupted before any scene finished: not even an empty folder stays
    out2 = tmp_path / "run2" / "out"
    guard = OutputGuard(out2)
    (out2 / "scenes").mkdir(parents=True)
    (out2 / "scenes" / ".v-Scene-001.json.tmp9").write_text("{")
    assert guard.undo(keep=out2 / "scenes") == 0
    assert not (tmp_path / "run2").exists()
