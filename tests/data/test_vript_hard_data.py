"""Vript-Hard readers: official annotation layouts, prediction CSV / JSONL, joining, one-line DataErrors.
(Named *_data so it does not collide with tests/metrics/test_vript_hard.py: tests/ has no __init__ files.)"""

import json

import pytest

from vsuite.data import vript_hard as D
from vsuite.errors import DataError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


RR_ROWS = [
    {"video_id": "v1", "clip_id": "v1-Scene-001", "question": "What?", "hint": "h1",
     "multiple_choice": ["a cup.", "a trophy.", "a medal.", "a hat."], "multiple_choice_answer": "a trophy.",
     "open_answer": "The answer is a trophy.", "scene_description": "..."},
    {"video_id": "v1", "clip_id": "v1-Scene-002", "question": "Who?", "hint": "h2",
     "multiple_choice": ["Peppa.", "George."], "multiple_choice_answer": "George.", "open_answer": "x"},
]


def test_annotation_file_in_folder_or_given(tmp_path):
    write_jsonl(tmp_path / "CAP_annotations.jsonl", [{"clip_id": "c", "content": "x"}])
    assert D.annotation_file(tmp_path, "HAL").name == "CAP_annotations.jsonl"  # the older name
    write_jsonl(tmp_path / "HAL_annotations.jsonl", [{"clip_id": "c", "content": "x"}])
    assert D.annotation_file(tmp_path, "HAL").name == "HAL_annotations.jsonl"
    assert D.annotation_file(tmp_path / "HAL_annotations.jsonl", "RR").name == "HAL_annotations.jsonl"
    with pytest.raises(DataError, match="no RR_annotations.jsonl"):
        D.annotation_file(tmp_path, "RR")


def test_read_hal(tmp_path):
    path = write_jsonl(tmp_path / "HAL_annotations.jsonl", [
        {"clip_id": "a-Scene-001", "content": ["first caption", "second caption"]},
        {"clip_id": "b-Scene-002", "content": "one caption"}])
    anns = D.read_hal_annotations(path)
    assert anns["a-Scene-001"].captions == ["first caption", "second caption"]
    assert anns["b-Scene-002"].captions == ["one caption"] and anns["b-Scene-002"].line == 2


def test_read_rr_letters_from_option_index(tmp_path):
    anns = D.read_rr_annotations(write_jsonl(tmp_path / "RR.jsonl", RR_ROWS))
    assert [a.answer_letter for a in anns] == ["(B)", "(B)"]
    assert anns[0].options[1] == "a trophy." and anns[0].hint == "h1"


def test_read_ero_answers(tmp_path):
    path = write_jsonl(tmp_path / "ERO.jsonl", [{"video_id": "v1", "question": "q", "answer": ["B", "A", "C"]},
                                                {"video_id": "v2", "question": "q", "answer": "Scene (C), (A), B"}])
    anns = D.read_ero_annotations(path)
    assert anns["v1"].answer == ["B", "A", "C"] and anns["v2"].answer == ["C", "A", "B"]


@pytest.mark.parametrize("text,match", [
    ('{"clip_id": "a", "content": "x"}\n{"clip_id": "b", "content": \n', r"HAL\.jsonl:2: invalid JSON"),
    ('{"clip_id": "a", "content": "x"}\n{"content": "y"}\n', r"HAL\.jsonl:2: field 'clip_id' missing"),
    ('{"clip_id": "a", "content": "x"}\n\n{"clip_id": "a", "content": "y"}\n', r":3: duplicate clip_id 'a' \(first on line 1\)"),
    ('{"clip_id": "a", "content": [1, 2]}\n', r":1: field 'content'"),
    ('[1, 2]\n', r":1: expected a JSON object"),
])
def test_bad_hal_annotations(tmp_path, text, match):
    path = tmp_path / "HAL.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        D.read_hal_annotations(path)


def test_bad_rr_answer_not_an_option(tmp_path):
    rows = [dict(RR_ROWS[0], multiple_choice_answer="a spoon.")]
    with pytest.raises(DataError, match=r"RR\.jsonl:1: multiple_choice_answer 'a spoon\.' is not one of the options"):
        D.read_rr_annotations(write_jsonl(tmp_path / "RR.jsonl", rows))


def test_read_official_csv_with_multiline_cells_and_meta(tmp_path):
    path = tmp_path / "pred.csv"
    meta = str({"video_id": "v1", "clip_id": "v1-Scene-002", "question": "Who's there?"})
    path.write_text('id,pred,gt,meta\n'
                    'v1,"(B) George.\nBecause he is small.",(B) George.,"' + meta.replace('"', '""') + '"\n'
                    'v1,,(A) a cup.,\n')
    preds = D.read_predictions(path)
    assert [(p.id, p.line, p.clip_id) for p in preds] == [("v1", 2, "v1-Scene-002"), ("v1", 4, None)]
    assert preds[0].pred.startswith("(B) George.\n") and preds[1].pred == "" and preds[1].gt == "(A) a cup."


def test_read_jsonl_predictions(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "pred": "x"}, {"id": 7, "pred": None, "clip_id": "c"}])
    preds = D.read_predictions(path)
    assert [(p.id, p.pred, p.clip_id, p.line) for p in preds] == [("a", "x", None, 1), ("7", None, "c", 2)]


@pytest.mark.parametrize("name,text,match", [
    ("p.csv", "id,answer\na,x\n", r"p\.csv:1: missing column 'pred'"),
    ("p.csv", "id,pred\na,x\n,y\n", r"p\.csv:3: empty id"),
    ("p.csv", "id,pred\na,x\nb,y,z\n", r"p\.csv:3: 3 fields, the header has 2"),
    ("p.jsonl", '{"id": "a", "pred": "x"}\n{"id": "b", "pred": "y"\n', r"p\.jsonl:2: invalid JSON"),
    ("p.jsonl", '{"id": "a", "pred": "x"}\n{"pred": "y"}\n', r"p\.jsonl:2: missing \"id\""),
    ("p.jsonl", '{"id": "a"}\n', r"p\.jsonl:1: missing \"pred\""),
    ("p.csv", "", r"p\.csv: empty file"),
])
def test_bad_prediction_files(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        D.read_predictions(path)
    assert "\n" not in str(info.value)


def test_join_missing_unknown_duplicate(tmp_path):
    anns = D.read_rr_annotations(write_jsonl(tmp_path / "RR.jsonl", RR_ROWS))
    pred_path = tmp_path / "p.csv"
    preds = [D.Prediction("v1-Scene-002", "(B)", 2)]
    items, coverage = D.join("RR", anns, preds, pred_path)
    assert coverage and [(j.id, j.prediction is None) for j in items] == [("v1-Scene-001", True), ("v1-Scene-002", False)]
    with pytest.raises(DataError, match=r"p\.csv:3: clip_id 'nope' is not in the annotations"):
        D.join("RR", anns, preds + [D.Prediction("nope", "(A)", 3)], pred_path)
    with pytest.raises(DataError, match=r"p\.csv:5: duplicate prediction for clip_id 'v1-Scene-002' \(first on line 2\)"):
        D.join("RR", anns, preds + [D.Prediction("v1-Scene-002", "(A)", 5)], pred_path)


def test_join_whole_video_setting(tmp_path):
    anns = D.read_rr_annotations(write_jsonl(tmp_path / "RR.jsonl", RR_ROWS))
    pred_path = tmp_path / "p.csv"
    preds = [D.Prediction("v1", "(B)", 2, clip_id="v1-Scene-002"), D.Prediction("v1", "(A)", 3, clip_id="v1-Scene-001")]
    items, _ = D.join("RR", anns, preds, pred_path, setting="whole")
    assert [j.prediction.line for j in items] == [3, 2]
    with pytest.raises(DataError, match=r"p\.csv:2: whole-video predictions need a clip_id"):
        D.join("RR", anns, [D.Prediction("v1", "(B)", 2)], pred_path, setting="whole")
    # the official way: a gt cell supplies the answer; then coverage cannot be checked
    items, coverage = D.join("RR", anns, [D.Prediction("v1", "(B)", 2, gt="(B) George.")], pred_path, setting="whole")
    assert not coverage and len(items) == 1 and items[0].annotation is None and items[0].gt_text == "(B) George."


def test_prompts_and_hash():
    assert D.PROMPTS["RR"]["answer_prefix"] == "Best option:("
    assert D.PROMPTS["ERO"]["answer_prefix"].endswith("Scene (")
    hashes = {D.prompt_hash(b) for b in D.BENCHMARKS}
    assert len(hashes) == 3 and all(len(h) == 16 for h in hashes)


def test_join_gt_column_precedence(tmp_path):
    anns = D.read_rr_annotations(write_jsonl(tmp_path / "RR.jsonl", RR_ROWS))
    preds = [D.Prediction("v1-Scene-001", "(B)", 2, gt="(C) a medal."), D.Prediction("v1-Scene-002", "(A)", 3, gt="")]
    items, coverage = D.join("RR", anns, preds, tmp_path / "p.csv")  # corrected: the annotations win
    assert coverage and [j.annotation.clip_id for j in items] == ["v1-Scene-001", "v1-Scene-002"]
    items, coverage = D.join("RR", anns, preds, tmp_path / "p.csv", prefer_gt_column=True)  # official
    # row 2's gt cell wins; row 3's empty gt cell supplies nothing, so its annotation is used
    assert not coverage and [(j.id, j.gt_text) for j in items] == [("v1-Scene-002", None), ("v1-Scene-001", "(C) a medal.")]


def test_open_ended_answers_column_and_key(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text('id,pred,open_pred\nv1-Scene-001,(B),"A trophy,\nsurely."\nv1-Scene-002,(A),\n')
    rows = D.read_predictions(csv)
    assert [(r.pred, r.open_pred, r.has_open) for r in rows] == [("(B)", "A trophy,\nsurely.", True),
                                                                 ("(A)", "", True)]
    jl = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "pred": "(B)", "open_pred": "cup"}, {"id": "b", "pred": "(A)"}])
    assert [(r.open_pred, r.has_open) for r in D.read_predictions(jl)] == [("cup", True), (None, False)]
    assert not D.read_predictions(write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "pred": "x"}]))[0].has_open
    # the official open-ended prompt (vript_rr_openend.json)
    assert D.PROMPTS["RR-open"]["question"] == "<VideoHere> \nQuestion: {question}\nHint: {hint}"
    assert D.PROMPTS["RR-open"]["system"].endswith("Based on your observations, give the answer that accurately "
                                                   "addresses the question.\n")
    assert D.prompt_hash("RR-open") != D.prompt_hash("RR")
