"""`vsuite eval classify`: top-1 / top-5 with multi-view averaging against a reference built without vsuite's
loaders (7 classes), the protocol in the report, list formats and label matching by name, one-line errors."""

import json
import tempfile
from pathlib import Path

import pytest
import torch
from helpers import check_results_schema, check_samples_file
from lvt_tiny import bar_videos, save_tiny_lvt

from vsuite.cli import run as cli_run
from vsuite.errors import EXIT_DATA
from vsuite.media import synth


NAMES = ("left", "right", "up", "down", "still", "spin", "blink")  # 7 classes: top-5 is not trivially 1

# The test protocol of the tiny model, by hand: 12-frame 32x40 videos, 4 frames 2 apart, 32-pixel squares.
# Clip starts 0..5 cut into K parts, clip k at floor((2k + 1) * 6 / 2K): K=1 -> 3; K=2 -> 1, 4.
CLIP_FRAMES = {1: [[3, 5, 7, 9]], 2: [[1, 3, 5, 7], [4, 6, 8, 10]]}
CROP_LEFT = {1: [4], 3: [0, 4, 8]}  # the short side is already 32: no resize; squares along the width


def reference_probabilities(model, path, clips, crops):
    """Class probabilities of one video without vsuite's loaders: PyAV frames, hand-built views, a direct
    forward of the model, softmax averaged over the views."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        frames = torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
    views = []
    for idx in CLIP_FRAMES[clips]:
        x = frames[idx].permute(0, 3, 1, 2).float() / 255  # [T, 3, 32, 40]
        views += [(x[..., :, left:left + 32] - 0.5) / 0.5 for left in CROP_LEFT[crops]]
    with torch.no_grad():
        return torch.softmax(model(pixel_values=torch.stack(views)).logits, dim=-1).mean(0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """7 videos whose labels are chosen so that video i's label ranks i-th in the reference probabilities
    (2 clips x 3 crops): top-1 must be exactly 1/7 and top-5 exactly 5/7."""
    from vsuite.models.lvt import LvtForVideoClassification

    root = tmp_path_factory.mktemp("evalcls")
    model = save_tiny_lvt(root / "model", labels=NAMES)
    net = LvtForVideoClassification.from_pretrained(model).eval()
    videos = []
    for rank, (path, _) in enumerate(bar_videos(root / "videos", 7)):
        order = torch.argsort(reference_probabilities(net, path, 2, 3), descending=True)
        videos.append((path, NAMES[int(order[rank])]))
    rows = ["path,label"] + [f"videos/{p.name},{label}" for p, label in videos]
    (root / "test.csv").write_text("\n".join(rows) + "\n")
    return root, model, videos, net


def evaluate(capsys, *args):
    """Run `vsuite eval classify`; with --json, `out` is results.json's `details` (the classification report)
    after the results files were checked against the shared schema."""
    args = [*map(str, args)]
    if "--out" not in args:
        args += ["--out", str(Path(tempfile.mkdtemp(prefix="evalcls-out-")))]
    code = cli_run(["eval", "classify", *args])
    captured = capsys.readouterr()
    out = captured.out
    if code == 0 and "--json" in args:
        doc = json.loads(out)
        folder = Path(args[args.index("--out") + 1])
        assert json.loads((folder / "results.json").read_text()) == doc
        check_results_schema(doc)
        assert doc["benchmark"] == "classify" and doc["protocol"]["decoder"] in ("pyav", "decord", "auto")
        samples = check_samples_file(folder / "samples.jsonl", doc["details"]["videos"])
        assert doc["scores"]["top1"] == pytest.approx(100 * sum(s["score"]["top1"] for s in samples) / len(samples))
        out = json.dumps(doc["details"])
    return code, out, captured.err


def test_report_scores_and_protocol(setup, capsys, tmp_path):
    root, model, videos, _ = setup
    preds = tmp_path / "preds.jsonl"
    code, out, err = evaluate(capsys, "--model", model, "--data", root / "test.csv", "--clips", 2, "--crops", 3,
                              "--video-backend", "pyav", "--json", "--predictions", preds)
    assert code == 0, err
    report = json.loads(out)
    assert report["videos"] == 7 and report["classes"] == 7 and report["top5_k"] == 5
    assert report["top1"] == pytest.approx(1 / 7) and report["top5"] == pytest.approx(5 / 7)
    proto = report["protocol"]
    got = (proto["clips"], proto["crops"], proto["views"], proto["sampling"], proto["sampling_rate"])
    assert got == (2, 3, 6, "dense", 2)
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(lines) == 7 and lines[0]["frames"] == CLIP_FRAMES[2]
    assert [len(line["top5"]) for line in lines] == [5] * 7


def test_single_view_matches_the_reference(setup, capsys):
    root, model, videos, net = setup
    code, out, err = evaluate(capsys, "--model", model, "--data", root / "test.csv", "--video-backend", "pyav",
                              "--json")
    assert code == 0, err
    ranks = []
    for path, label in videos:
        order = torch.argsort(reference_probabilities(net, path, 1, 1), descending=True).tolist()
        ranks.append(order.index(NAMES.index(label)))
    report = json.loads(out)
    assert report["top1"] == pytest.approx(sum(r < 1 for r in ranks) / 7)
    assert report["top5"] == pytest.approx(sum(r < 5 for r in ranks) / 7)


def test_table_output_and_limit(setup, capsys):
    root, model, _, _ = setup
    code, out, err = evaluate(capsys, "--model", model, "--data", root / "test.csv", "--limit", 2)
    assert code == 0, err
    assert out == ""  # the table goes to stderr; stdout carries only --json
    row = next(line.split() for line in err.splitlines() if "1x1" in line)
    assert "top1" in err and row[:2] == ["2", "1x1"]  # videos, views


def test_path_label_list_with_ids_and_ssv2_json(setup, capsys, tmp_path):
    root, model, videos, _ = setup
    (tmp_path / "ids.txt").write_text("".join(f"{p} {NAMES.index(label)}\n" for p, label in videos))
    code, out, err = evaluate(capsys, "--model", model, "--data", tmp_path / "ids.txt", "--json")
    assert code == 0, err
    by_ids = json.loads(out)["top1"]
    # SSv2 layout: <root>/<id>.webm-or-other, labels.json numbering differs from the model's: matched by name
    ss = tmp_path / "ssv2"
    ss.mkdir()
    for k, (p, _) in enumerate(videos):
        (ss / f"{k}.mp4").write_bytes(p.read_bytes())
    (ss / "labels.json").write_text(json.dumps({name: str(6 - i) for i, name in enumerate(NAMES)}))
    entries = [{"id": str(k), "label": label, "template": label, "placeholders": []}
               for k, (_, label) in enumerate(videos)]
    (ss / "validation.json").write_text(json.dumps(entries))
    code, out, err = evaluate(capsys, "--model", model, "--data", ss / "validation.json", "--json")
    assert code == 0, err
    assert json.loads(out)["format"] == "ssv2-json" and json.loads(out)["top1"] == by_ids


def test_errors(setup, capsys, tmp_path):
    root, model, videos, _ = setup
    (tmp_path / "unknown.csv").write_text(f"path,label\n{videos[0][0]},jumping\n")
    code, _, err = evaluate(capsys, "--model", model, "--data", tmp_path / "unknown.csv")
    assert code == EXIT_DATA and "'jumping' is not one of the model's 7 classes" in err
    bad = synth.make_not_media(tmp_path / "bad.mp4")
    (tmp_path / "bad.csv").write_text(f"path,label\n{videos[0][0]},left\n{bad},right\n")
    code, _, err = evaluate(capsys, "--model", model, "--data", tmp_path / "bad.csv")
    assert code == EXIT_DATA and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Error: cannot read")
    code, _, err = evaluate(capsys, "--model", model, "--data", tmp_path / "missing.csv")
    assert code == EXIT_DATA and "video list not found" in err
