"""`vsuite eval vript-rr --judge M`: open-ended accuracy by a local judge LM beside the multiple-choice one
(scene and whole-video settings, the official open-ended files), and `--model` answers forced to start with
the official answer prefixes (RR "Best option:(", ERO "... Scene (")."""

import json

import pytest
from helpers import check_results_schema, check_samples_file
from tiny_judge import build_judge
from tiny_vlm import smolvlm_dir  # noqa: F401  (session fixture: a tiny random SmolVLM2 folder)

from vsuite.cli import run as cli_run
from vsuite.errors import EXIT_MODEL, EXIT_USAGE


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rr_row(video, n, options, answer, open_answer):
    return {"video_id": video, "clip_id": f"{video}-Scene-{n:03d}", "question": f"q{n}?", "hint": f"h{n}",
            "multiple_choice": options, "multiple_choice_answer": answer, "open_answer": open_answer}


@pytest.fixture()
def rr_data(tmp_path):
    data = tmp_path / "Vript-RR"
    data.mkdir()
    write_jsonl(data / "RR_annotations.jsonl", [
        rr_row("v1", 1, ["a cup.", "a trophy."], "a trophy.", "The answer is a trophy."),  # (B)
        rr_row("v1", 2, ["Peppa.", "George."], "Peppa.", "Peppa."),  # (A)
        rr_row("v2", 7, ["x", "y", "z"], "z", "z"),  # (C)
        rr_row("v2", 9, ["x", "y", "z"], "y", "y")])  # (B): no prediction
    return data


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    base = tmp_path_factory.mktemp("judges")
    return {"True": build_judge(base / "always-true"), "False": build_judge(base / "always-false", "False")}


def evaluate(capsys, *args):
    code = cli_run(["eval", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_open_pred_judged_beside_multiple_choice(tmp_path, rr_data, judges, capsys):
    preds = write_jsonl(tmp_path / "rr.jsonl", [
        {"id": "v1-Scene-001", "pred": "(B) a trophy.", "open_pred": "A trophy."},
        {"id": "v1-Scene-002", "pred": "(B) George.", "open_pred": ""},  # blank open answer: not judged
        {"id": "v2-Scene-007", "pred": "(C) z", "open_pred": "z"}])
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--predictions", preds, "--judge",
                              judges["True"], "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    check_results_schema(doc)
    s = doc["scores"]
    # multiple choice unchanged: 2 of 4 (the missing item wrong); open-ended: the judge says yes to the 2 judged
    # answers, the blank and the missing one count wrong: 2 of 4
    assert (s["accuracy"], s["n"]) == (50.0, 4)
    assert (s["open_accuracy"], s["open_correct"], s["open_n"], s["open_judge"]) == (50.0, 2, 4, str(judges["True"]))
    assert s["open_status"] == {"ok": 2, "blank": 1, "missing": 1} and s["missing"] == 1
    assert doc["config"]["answer_type"] == "multiple_choice+open_ended"
    assert doc["config"]["judge"]["decoding"] == "greedy" and doc["config"]["judge"]["official"].startswith("gpt-4")
    assert doc["protocol"]["open_prompt_hash"] != doc["protocol"]["prompt_hash"] and "--judge" in doc["command"]
    assert "open_accuracy" in err and "RR open-ended answers: the open_pred column" in err
    samples = check_samples_file(tmp_path / "rr.vript-rr" / "samples.jsonl", 4)
    assert [x["score"] for x in samples] == [{"correct": 1, "open_correct": 1}, {"correct": 0, "open_correct": 0},
                                             {"correct": 1, "open_correct": 1}, {"correct": 0, "open_correct": 0}]
    assert samples[0]["open"]["target"] == "The answer is a trophy." and samples[0]["open"]["response"] == "A trophy."
    assert samples[0]["open"]["judge_output"].startswith('{"rating": True}')
    assert [x["open"]["status"] for x in samples] == ["ok", "blank", "ok", "missing"]

    # a judge that always says no: every open answer wrong, multiple choice untouched
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--predictions", preds, "--judge",
                              judges["False"], "--device", "cpu", "--json", "--out", tmp_path / "no")
    s = json.loads(out)["scores"]
    assert (s["accuracy"], s["open_accuracy"], s["open_n"]) == (50.0, 0.0, 4)

    # official: blank and missing rows skipped
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--predictions", preds, "--judge",
                              judges["True"], "--device", "cpu", "--json", "--official-compat", "--out", tmp_path / "c")
    s = json.loads(out)["scores"]
    assert (s["open_accuracy"], s["open_n"]) == (100.0, 2)


def test_official_open_ended_csv_whole_setting(tmp_path, rr_data, judges, capsys):
    """The official open-ended outputs (id = video, pred = the open answer, gt = the open answer, meta): the
    pred column is judged, multiple choice is not scored; the gt column is not mistaken for option letters."""
    meta = lambda clip: '"' + str({"video_id": clip[:2], "clip_id": clip}).replace('"', '""') + '"'  # noqa: E731
    preds = tmp_path / "RR_video_model_openended_output.csv"
    preds.write_text("id,pred,gt,meta\n"
                     f"v1,It is a cup.,The answer is a trophy.,{meta('v1-Scene-001')}\n"
                     f"v1,Peppa.,Peppa.,{meta('v1-Scene-002')}\n"
                     f"v2,,z,{meta('v2-Scene-007')}\n"
                     f"v2,y,y,{meta('v2-Scene-009')}\n")
    for compat in ([], ["--official-compat"]):
        code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--predictions", preds, "--setting",
                                  "whole", "--judge", judges["True"], "--device", "cpu", "--json",
                                  "--out", tmp_path / f"o{len(compat)}", *compat)
        assert code == 0, err
        doc = json.loads(out)
        s = doc["scores"]
        assert "accuracy" not in s and doc["config"]["answer_type"] == "open_ended"
        # 3 judged right, the empty answer wrong (corrected) or skipped (official)
        assert (s["open_accuracy"], s["open_n"]) == ((75.0, 4) if not compat else (100.0, 3))
        assert "multiple choice not scored" in err
        samples = check_samples_file(tmp_path / f"o{len(compat)}" / "samples.jsonl", 4)
        assert samples[0]["target"] == "The answer is a trophy." and samples[0]["response"] == "It is a cup."


def test_judge_errors(tmp_path, rr_data, capsys):
    from vsuite.tasks.eval_vript import VriptOptions, check_options

    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "v1-Scene-001", "pred": "(B)", "open_pred": "x"}])
    with pytest.raises(Exception, match="--judge applies to vript-rr only"):
        check_options("vript-ero", VriptOptions(data="d", predictions="p", judge="m"))
    cases = [(["--judge", tmp_path / "no-judge"], EXIT_MODEL, "no model folder at"),
             # a Hub id that is not cached, offline: the hint names hf download and the local-folder route
             (["--judge", "someone/judge-7b"], EXIT_MODEL, "--judge DIR"),
             (["--judge", " "], EXIT_USAGE, "--judge must name a model")]
    for args, code_expected, message in cases:
        code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--predictions", preds, "--device", "cpu",
                                  "--out", tmp_path / "o", *args)
        assert code == code_expected and out == "" and message in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing written before the judge loads
    code, out, err = evaluate(capsys, "vript-ero", "--data", rr_data, "--predictions", preds, "--judge", "m")
    assert code == EXIT_USAGE


def test_model_mode_forces_prefixes_and_answers_open_questions(tmp_path, rr_data, judges, smolvlm_dir, capsys):
    from vsuite.media import synth

    (rr_data / "RR_scenes").mkdir()
    for clip in ("v1-Scene-001", "v1-Scene-002"):
        synth.make_index_video(rr_data / "RR_scenes" / f"{clip}.mp4", num_frames=24, fps=12)
    out_dir = tmp_path / "run"
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--model", smolvlm_dir, "--limit", 2,
                              "--frames", 4, "--max-new-tokens", 3, "--device", "cpu", "--out", out_dir,
                              "--judge", judges["True"], "--json")
    assert code == 0, err
    doc = json.loads(out)
    rows = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
    assert all(r["pred"].startswith("Best option:(") and isinstance(r["open_pred"], str) for r in rows)
    assert all(not r["open_pred"].startswith("Best option:(") for r in rows)
    s = doc["scores"]
    assert s["n"] == 2 and s["open_n"] == 2 and doc["config"]["answer_type"] == "multiple_choice+open_ended"
    assert s["open_accuracy"] == 100.0 * sum(bool(r["open_pred"].strip()) for r in rows) / 2
    samples = check_samples_file(out_dir / "samples.jsonl", 2)
    assert [x["open"]["response"] for x in samples] == [r["open_pred"] for r in rows]


def test_model_mode_ero_prefix(tmp_path, smolvlm_dir, capsys):
    from vsuite.data.vript_hard import PROMPTS
    from vsuite.media import synth

    data = tmp_path / "ero"
    (data / "ERO_videos").mkdir(parents=True)
    write_jsonl(data / "ERO_annotations.jsonl", [{"video_id": "v1", "question": "Scene (A): a. Scene (B): b. "
                                                  "Scene (C): c.", "answer": ["B", "A", "C"]}])
    synth.make_index_video(data / "ERO_videos" / "v1.mp4", num_frames=24, fps=12)
    code, out, err = evaluate(capsys, "vript-ero", "--data", data, "--model", smolvlm_dir, "--frames", 4,
                              "--max-new-tokens", 3, "--device", "cpu", "--out", tmp_path / "run", "--json")
    assert code == 0, err
    row = json.loads((tmp_path / "run" / "predictions.jsonl").read_text())
    prefix = "The correct temporal order of the scenes based on the video is: Scene ("
    assert PROMPTS["ERO"]["answer_prefix"] == prefix and row["pred"].startswith(prefix)
    assert json.loads(out)["protocol"]["answer_prefix"] == prefix
