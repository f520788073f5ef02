"""`vsuite eval classify`: top-1 / top-5 with multi-view averaging, the protocol in the report, list formats
and label matching by name, and one-line errors."""

import json

import pytest
import torch
from lvt_tiny import bar_videos, save_tiny_lvt

from vsuite.cli import run as cli_run
from vsuite.errors import EXIT_DATA
from vsuite.media import synth


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcls")
    model = save_tiny_lvt(root / "model")
    videos = bar_videos(root / "videos", 4)
    rows = ["path,label"] + [f"videos/{p.name},{label}" for p, label in videos]
    (root / "test.csv").write_text("\n".join(rows) + "\n")
    return root, model, videos


def evaluate(capsys, *args):
    code = cli_run(["eval", "classify", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_scores(model_dir, videos, clips, crops):
    """Accuracy recomputed from the library: softmax per view, averaged, argmax."""
    from vsuite.data.video_classification import load_views
    from vsuite.tasks._classifier import load_classifier, video_probabilities

    model, pre = load_classifier(model_dir, torch.device("cpu"))
    hits = 0
    for path, label in videos:
        views, _ = load_views(path, pre, clips, crops, backend="pyav")
        assert views.shape[0] == clips * crops
        per_view = torch.softmax(model(pixel_values=views).logits, -1)
        avg = video_probabilities(model, views, torch.device("cpu"))
        assert torch.allclose(avg, per_view.mean(0), atol=1e-6)
        hits += int(model.config.id2label[int(avg.argmax())] == label)
    return hits / len(videos)


def test_report_scores_and_protocol(setup, capsys, tmp_path):
    root, model, videos = setup
    preds = tmp_path / "preds.jsonl"
    code, out, err = evaluate(capsys, "--model", model, "--data", root / "test.csv", "--clips", 2, "--crops", 3,
                              "--video-backend", "pyav", "--json", "--predictions", preds)
    assert code == 0, err
    report = json.loads(out)
    assert report["videos"] == 4 and report["classes"] == 2 and report["top5_k"] == 2
    assert report["top5"] == 1.0  # 2 classes: always within the top 2
    assert report["top1"] == pytest.approx(expected_scores(model, videos, 2, 3))
    proto = report["protocol"]
    got = (proto["clips"], proto["crops"], proto["views"], proto["sampling"], proto["sampling_rate"])
    assert got == (2, 3, 6, "dense", 2)
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(lines) == 4 and len(lines[0]["frames"]) == 2 and len(lines[0]["frames"][0]) == 4


def test_table_output_and_limit(setup, capsys):
    root, model, _ = setup
    code, out, err = evaluate(capsys, "--model", model, "--data", root / "test.csv", "--limit", 2)
    assert code == 0, err
    assert "top1" in out and "1x1" in out and out.split()[-4] == "2"


def test_path_label_list_with_ids_and_ssv2_json(setup, capsys, tmp_path):
    root, model, videos = setup
    (tmp_path / "ids.txt").write_text("".join(f"{p} {['left', 'right'].index(label)}\n" for p, label in videos))
    code, out, err = evaluate(capsys, "--model", model, "--data", tmp_path / "ids.txt", "--json")
    assert code == 0, err
    by_ids = json.loads(out)["top1"]
    # SSv2 layout: <root>/<id>.webm-or-other, labels.json numbering differs from the model's: matched by name
    ss = tmp_path / "ssv2"
    ss.mkdir()
    for k, (p, _) in enumerate(videos):
        (ss / f"{k}.mp4").write_bytes(p.read_bytes())
    (ss / "labels.json").write_text(json.dumps({"right": "0", "left": "1"}))
    entries = [{"id": str(k), "label": label, "template": label, "placeholders": []}
               for k, (_, label) in enumerate(videos)]
    (ss / "validation.json").write_text(json.dumps(entries))
    code, out, err = evaluate(capsys, "--model", model, "--data", ss / "validation.json", "--json")
    assert code == 0, err
    assert json.loads(out)["format"] == "ssv2-json" and json.loads(out)["top1"] == by_ids


def test_errors(setup, capsys, tmp_path):
    root, model, videos = setup
    (tmp_path / "unknown.csv").write_text(f"path,label\n{videos[0][0]},jumping\n")
    code, _, err = evaluate(capsys, "--model", model, "--data", tmp_path / "unknown.csv")
    assert code == EXIT_DATA and "'jumping' is not one of the model's 2 classes" in err
    bad = synth.make_not_media(tmp_path / "bad.mp4")
    (tmp_path / "bad.csv").write_text(f"path,label\n{videos[0][0]},left\n{bad},right\n")
    code, _, err = evaluate(capsys, "--model", model, "--data", tmp_path / "bad.csv")
    assert code == EXIT_DATA and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Error: cannot read")
    code, _, err = evaluate(capsys, "--model", model, "--data", tmp_path / "missing.csv")
    assert code == EXIT_DATA and "video list not found" in err
