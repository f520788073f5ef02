"""FAVDBench data: split lists (ms vs s), clip ids, annotation shapes, media paths, prediction files, the split rule."""

from __future__ import annotations

import json

import pytest

from vsuite.data import favdbench as D
from vsuite.errors import DataError


def _dataset(root, meta="ytid,start,end\n-05wY_41ht1s,123000,133000\nabc,5000,10000\n", ann=None, lang="en"):
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "test.csv").write_text(meta)
    ann = ann if ann is not None else {"-05wY_41ht1s_123000_133000": "first. second.", "abc_5000_10000": "dog. cat."}
    (root / D.ANNOTATION_FILES[lang]).write_text(json.dumps(ann, ensure_ascii=False))
    return root


# ----------------------------------------------------------------------------- meta and ids
def test_meta_in_milliseconds_gives_clip_ids_and_seconds(tmp_path):
    rows = D.read_meta(_dataset(tmp_path) / "meta" / "test.csv")
    assert rows == [("-05wY_41ht1s_123000_133000", "-05wY_41ht1s", 123.0, 133.0), ("abc_5000_10000", "abc", 5.0, 10.0)]


def test_meta_in_seconds_is_converted_to_millisecond_ids(tmp_path):
    rows = D.read_meta(_dataset(tmp_path, meta="ytid,start,end\nabc,5,10\nxyz,12.5,22.5\n") / "meta" / "test.csv")
    assert [r[0] for r in rows] == ["abc_5000_10000", "xyz_12500_22500"]
    assert rows[1][2:] == (12.5, 22.5)


def test_clip_id_parsing_keeps_underscores_of_the_youtube_id():
    assert D.parse_clip_id("-05w_Y4_1ht1s_123000_133000") == ("-05w_Y4_1ht1s", 123000, 133000)
    with pytest.raises(DataError, match="not FAVDBench"):
        D.parse_clip_id("abc_12s_20s")
    assert D.normalize_id("test/abc_0_5000.mp4") == "abc_0_5000"


@pytest.mark.parametrize("meta, message", [
    ("id,start,end\nabc,0,5000\n", "header must hold ytid,start,end"),
    ("ytid,start,end\nabc,x,5000\n", "test.csv:2: start/end must be numbers"),
    ("ytid,start,end\nabc,5000,5000\n", "test.csv:2: needs a ytid and end > start"),
    ("ytid,start,end\nabc,0,5000\nabc,0,5000\n", "test.csv:3: clip abc_0_5000 is listed twice"),
    ("ytid,start,end\n", "no clips"),
])
def test_bad_meta_is_a_one_line_data_error(tmp_path, meta, message):
    _dataset(tmp_path, meta=meta)
    with pytest.raises(DataError, match=message):
        D.read_meta(tmp_path / "meta" / "test.csv")


# ----------------------------------------------------------------------------- annotations
@pytest.mark.parametrize("shape", ["dict", "dict-list", "records", "coco", "tsv"])
def test_every_annotation_shape_reads_the_same(tmp_path, shape):
    texts = {"a_0_5000": "a man sings.", "b_0_10000": "a dog barks."}
    if shape == "dict":
        doc = texts
    elif shape == "dict-list":
        doc = {k: [v] for k, v in texts.items()}
    elif shape == "records":
        doc = [{"clip_id": k, "description": v} for k, v in texts.items()]
    elif shape == "coco":
        doc = {"annotations": [{"image_id": k, "caption": v, "id": i} for i, (k, v) in enumerate(texts.items())],
               "images": [{"id": k} for k in texts]}
    if shape == "tsv":
        path = tmp_path / "test.caption.tsv"
        path.write_text("".join(f"test/{k}.mp4\t{json.dumps([{'caption': v}])}\n" for k, v in texts.items()))
    else:
        path = tmp_path / "ann.json"
        path.write_text(json.dumps(doc))
    assert D.read_annotations(path) == {k: [v] for k, v in texts.items()}


def test_bad_annotation_files_name_the_file(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text('{"a_0_5000": "x",\n oops}')
    with pytest.raises(DataError, match=r"ann.json:2: broken JSON"):
        D.read_annotations(path)
    path.write_text(json.dumps({"a_0_5000": 3}))
    with pytest.raises(DataError, match="'a_0_5000': a description must be text"):
        D.read_annotations(path)


def test_load_split_with_media_paths_and_languages(tmp_path):
    root = _dataset(tmp_path)
    _dataset(tmp_path, ann={"-05wY_41ht1s_123000_133000": "第一句。第二句。", "abc_5000_10000": "狗。猫。"}, lang="zh")
    (root / "videos" / "test").mkdir(parents=True)
    (root / "videos" / "test" / "abc_5000_10000.mp4").write_bytes(b"")
    (root / "audio_mp3").mkdir()
    (root / "audio_mp3" / "abc_5000_10000.wav").write_bytes(b"")  # flat layout, another extension
    clips = D.load_favdbench(root, "test", "en")
    assert [c.id for c in clips] == ["-05wY_41ht1s_123000_133000", "abc_5000_10000"]
    assert clips[0].caption == "first. second." and clips[0].video_path is None and clips[0].audio_path is None
    assert clips[1].video_path == root / "videos" / "test" / "abc_5000_10000.mp4"
    assert clips[1].audio_path == root / "audio_mp3" / "abc_5000_10000.wav"
    assert clips[1].duration_s == 5.0
    assert D.load_favdbench(root, "test", "zh")[1].caption == "狗。猫。"
    config = D.FAVDBenchConfig(root=str(root), lang="zh")
    assert D.load_from_config(config, "test")[0].caption == "第一句。第二句。"


def test_clip_without_description_or_missing_split_is_an_error(tmp_path):
    root = _dataset(tmp_path, ann={"abc_5000_10000": "dog."})
    with pytest.raises(DataError, match=r"1 clip\(s\) of meta/test.csv have no description, first -05wY_41ht1s"):
        D.load_favdbench(root, "test")
    with pytest.raises(DataError, match="no split list .*val.csv"):
        D.load_favdbench(root, "val")
    with pytest.raises(DataError, match="no annotation file"):
        D.load_favdbench(root, "test", "zh")


def test_config_is_strict():
    from pydantic import ValidationError

    assert D.FAVDBenchConfig().video_dir == "videos"
    with pytest.raises(ValidationError):
        D.FAVDBenchConfig(lang="fr")
    with pytest.raises(ValidationError):
        D.FAVDBenchConfig(rooot="x")


# ----------------------------------------------------------------------------- summary / visual / audio
EN = ("a man plays a guitar on a stage. the man wears a black hat. the guitar is brown. a red light is behind him. "
      "the floor is wooden. {penultimate} the guitar sounds bright and loud.")


def test_split_english_takes_the_last_sentence_and_a_sound_sentence_before_it():
    summary, visual, audio = D.split_description(EN.format(penultimate="the stage is dark."))
    assert summary == "a man plays a guitar on a stage."
    assert visual == ["the man wears a black hat.", "the guitar is brown.", "a red light is behind him.",
                      "the floor is wooden.", "the stage is dark."]
    assert audio == ["the guitar sounds bright and loud."]
    _, visual, audio = D.split_description(EN.format(penultimate="the man sings a song."))
    assert audio == ["the man sings a song.", "the guitar sounds bright and loud."] and len(visual) == 4


def test_split_with_a_fixed_number_of_audio_sentences_and_short_texts():
    _, visual, audio = D.split_description(EN.format(penultimate="the stage is dark."), audio_sentences=2)
    assert audio == ["the stage is dark.", "the guitar sounds bright and loud."] and len(visual) == 4
    assert D.split_description("one sentence only.") == ("one sentence only.", [], [])
    assert D.split_description("summary. a voice speaks.") == ("summary.", [], ["a voice speaks."])
    # a sound word in the second of three sentences: one visual sentence is always kept
    assert D.split_description("s. a voice. b.") == ("s.", ["a voice."], ["b."])
    assert D.split_description("") == ("", [], [])


def test_split_chinese_on_the_ideographic_full_stop():
    text = "一个男人在舞台上弹吉他。他戴着黑色帽子。吉他是棕色的。背后有红灯。他在唱歌。吉他声音响亮。"
    summary, visual, audio = D.split_description(text, lang="zh")
    assert summary == "一个男人在舞台上弹吉他。"
    assert visual == ["他戴着黑色帽子。", "吉他是棕色的。", "背后有红灯。"]
    assert audio == ["他在唱歌。", "吉他声音响亮。"]


# ----------------------------------------------------------------------------- prediction files
def test_predictions_as_dict_coco_list_and_json_lines(tmp_path):
    want = {"a_0_5000": "x.", "b_0_5000": "y."}
    (tmp_path / "d.json").write_text(json.dumps(want))
    (tmp_path / "c.json").write_text(json.dumps([{"image_id": k, "caption": v} for k, v in want.items()]))
    (tmp_path / "l.jsonl").write_text("".join(json.dumps({"id": k, "caption": v}) + "\n\n" for k, v in want.items()))
    for name in ("d.json", "c.json", "l.jsonl"):
        assert D.read_predictions(tmp_path / name) == want


@pytest.mark.parametrize("name, text, message", [
    ("p.json", '[{"image_id": "a_0_5000", "caption": "x"},\n{"image_id": ', r"p.json:2: broken JSON"),
    ("p.json", '[{"image_id": "a_0_5000", "caption": 7}]', r"p.json: item 0 \(a_0_5000\): the caption must be text"),
    ("p.json", '[{"image_id": "a_0_5000", "caption": "x"}, {"caption": "y"}]', r"p.json: item 1: no image_id"),
    ("p.json", '[{"image_id": "a_0_5000", "caption": "x"}, {"image_id": "a_0_5000", "caption": "y"}]',
     r"item 1 \(a_0_5000\): clip a_0_5000 is predicted twice"),
    ("p.json", '{"a_0_5000": ["x"]}', r"p.json: id 'a_0_5000': the caption must be text, got list"),
    ("p.json", '"just text"', r"p.json: expected \{id: caption\}"),
    ("p.json", "[]", "p.json: no predictions"),
    ("p.jsonl", '{"id": "a_0_5000", "caption": "x"}\n\n{"id": "b_0_5000", "caption": null}\n',
     r"p.jsonl:3 \(b_0_5000\): the caption must be text"),
    ("p.jsonl", '{"id": "a_0_5000", "caption": "x"}\n{bad\n', r"p.jsonl:2: broken JSON"),
])
def test_bad_prediction_files_name_the_file_and_item(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        D.read_predictions(tmp_path / name)
