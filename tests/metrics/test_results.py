"""The one results format of `vsuite eval`: results.json + samples.jsonl schemas, atomic writes, stderr table."""

import json

import pytest

from helpers import check_results_schema, check_samples_file

from vsuite.metrics import results as R

def test_write_results_layout(tmp_path):
    samples = [{"id": "a", "target": "(A)", "response": "(A) x", "score": 1},
               {"id": "b", "target": "(B)", "response": None, "score": {"correct": 0}, "status": "missing"}]
    out = tmp_path / "run" / "eval"
    doc = R.write_results(out, {"accuracy": 50.0, "n": 2}, samples, "vsuite eval vript-rr --data d",
                          {"name": "m", "source": "model"}, {"frames": 16, "fps": None, "decoder": "pyav"},
                          benchmark="vript-rr", config={"setting": "scene"}, elapsed_s=1.23456)
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "samples.jsonl"]  # no temp files left
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == doc
    check_results_schema(on_disk)
    assert on_disk["scores"] == {"accuracy": 50.0, "n": 2} and on_disk["n_samples"] == 2
    assert on_disk["protocol"] == {"frames": 16, "fps": None, "decoder": "pyav", "prompt_hash": None}
    assert on_disk["config"] == {"setting": "scene"} and on_disk["elapsed_s"] == 1.235
    assert check_samples_file(out / "samples.jsonl", 2) == samples


def test_default_model_and_bad_sample(tmp_path):
    doc = R.build_results({"x": 1.0}, [], "vsuite eval x", None, None, benchmark="x")
    assert doc["model"] == {"name": None, "source": "predictions"}
    with pytest.raises(ValueError, match="sample 0 lacks score"):
        R.write_results(tmp_path / "o", {"x": 1.0}, [{"id": 1, "target": 1, "response": 1}], "vsuite eval x",
                        None, None, benchmark="x")
    assert not (tmp_path / "o" / "results.json").exists()


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "o"
    R.write_results(out, {"x": 1.0}, [], "vsuite eval x", None, None, benchmark="x")
    before = (out / "results.json").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(R.os, "replace", boom)
    with pytest.raises(OSError):
        R.write_results(out, {"x": 2.0}, [], "vsuite eval x", None, None, benchmark="x")
    assert (out / "results.json").read_text() == before
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "samples.jsonl"]


def test_resolved_command_quotes():
    assert R.resolved_command(["eval", "vript-hal", "--data", "my dir"]) == "vsuite eval vript-hal --data 'my dir'"


def test_print_table_goes_to_stderr(capsys):
    R.print_table("vript-ero", {"@1": 75.0, "n": 4})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "75.00" in captured.err and "@1" in captured.err and "vript-ero" in captured.err
