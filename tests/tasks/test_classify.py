"""`vsuite classify`: output formats with sampling records, and one-line errors for bad media, a missing
model and bad arguments. Most calls run the CLI in-process (vsuite.cli.run) to skip the import cost; the
exit-code contract is also checked once through the real entry point."""

import json

import pytest
from helpers import assert_one_line_error, run_vsuite
from lvt_tiny import bar_videos, save_tiny_lvt

from vsuite.cli import run as cli_run
from vsuite.errors import EXIT_DATA, EXIT_DEVICE, EXIT_MODEL, EXIT_USAGE
from vsuite.media import synth


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    model = save_tiny_lvt(root / "model")
    return root, model, bar_videos(root / "videos", 2)


def classify(capsys, *args):
    code = cli_run(["classify", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_has_predictions_and_sampling_records(setup, capsys):
    root, model, videos = setup
    code, out, err = classify(capsys, videos[0][0], videos[1][0], "--model", model, "--clips", 2, "--crops", 3,
                              "--json", "--video-backend", "pyav")
    assert code == 0, err
    report = json.loads(out)
    assert report["protocol"]["views"] == 6 and report["protocol"]["aggregation"] == "mean of softmax over views"
    assert len(report["videos"]) == 2
    first = report["videos"][0]
    assert first["video"] == str(videos[0][0])
    assert [p["rank"] for p in first["predictions"]] == [1, 2]  # top-5 capped at the 2 classes
    assert {p["label"] for p in first["predictions"]} == {"left", "right"}
    assert abs(sum(p["probability"] for p in first["predictions"]) - 1) < 1e-5
    clips = first["sampling"]["clips"]
    assert len(clips) == 2 and all(len(c["indices"]) == 4 and c["backend"] == "pyav" for c in clips)
    assert clips[0]["resolution"] == [32, 40] and clips[0]["protocol"] == "clips"


def test_text_output(setup, capsys):
    root, model, videos = setup
    code, out, err = classify(capsys, videos[0][0], "--model", model, "--top-k", 1)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == str(videos[0][0]) and len(lines) == 2 and lines[1].split()[0] == "1"
    assert lines[1].split()[1] in ("left", "right")
    assert "Loading weights" not in err


def _bad_media(kind, tmp):
    if kind == "missing":
        return tmp / "nope.mp4"
    if kind == "not-media":
        return synth.make_not_media(tmp / "text.mp4")
    if kind in ("truncated", "truncated-data"):  # index lost / index intact but frames missing
        good = synth.make_index_video(tmp / "good.mp4", num_frames=48, faststart=True)
        return synth.make_truncated(good, tmp / "cut.mp4", keep=0.4 if kind == "truncated" else 0.7)
    if kind == "zero-frames":
        return synth.make_zero_frame_video(tmp / "empty.avi")
    if kind == "audio-only":
        return synth.make_audio_file(tmp / "tone.m4a", duration=0.5)
    if kind == "folder":
        (tmp / "dir.mp4").mkdir()
        return tmp / "dir.mp4"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "not-media", "truncated", "truncated-data", "zero-frames",
                                  "audio-only", "folder"])
def test_bad_media_is_reported_per_file_and_the_batch_goes_on(setup, capsys, tmp_path, kind):
    root, model, videos = setup
    bad = _bad_media(kind, tmp_path)
    code, out, err = classify(capsys, videos[0][0], bad, videos[1][0], "--model", model, "--video-backend", "pyav")
    assert code == EXIT_DATA, err
    assert "Traceback" not in err
    errors = [line for line in err.strip().splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and bad.name in errors[0], err  # the file's own error, then the summary
    assert errors[1] == f"Error: 1 of 3 videos could not be classified: {bad}"
    printed = [line for line in out.splitlines() if not line.startswith(" ")]
    assert printed == [str(videos[0][0]), str(videos[1][0])]  # the good videos' results, in order


def test_bad_media_in_json_is_an_entry_with_an_error(setup, capsys, tmp_path):
    root, model, videos = setup
    bad = synth.make_not_media(tmp_path / "text.mp4")
    code, out, err = classify(capsys, bad, videos[0][0], "--model", model, "--json", "--video-backend", "pyav")
    assert code == EXIT_DATA, err
    entries = json.loads(out)["videos"]
    assert [e["video"] for e in entries] == [str(bad), str(videos[0][0])]
    assert entries[0]["exit_code"] == EXIT_DATA and "predictions" not in entries[0] and entries[0]["error"]
    assert "error" not in entries[1] and len(entries[1]["predictions"]) == 2


def test_first_failure_sets_the_exit_code(setup, capsys, tmp_path):
    root, model, videos = setup
    bad = synth.make_not_media(tmp_path / "text.mp4")
    code, out, err = classify(capsys, bad, "--model", model)  # a single bad video: its own one-line error
    assert code == EXIT_DATA and out == ""
    assert [line for line in err.splitlines() if line.strip()] == [err.strip()] and bad.name in err
    code, out, err = classify(capsys, bad, tmp_path / "nope.mp4", "--model", model)  # all bad: no model work
    assert code == EXIT_DATA and out == "" and "2 of 2 videos could not be classified" in err


def test_contract_through_the_entry_point(setup, tmp_path):
    root, model, videos = setup
    res = run_vsuite("classify", str(synth.make_not_media(tmp_path / "x.mp4")), "--model", str(model))
    assert_one_line_error(res, EXIT_DATA)
    res = run_vsuite("classify", str(videos[0][0]), "--model", str(tmp_path / "no-model"))
    assert_one_line_error(res, EXIT_MODEL)
    assert "no model folder" in res.stderr


def test_model_and_argument_errors(setup, capsys, tmp_path):
    root, model, videos = setup
    (tmp_path / "empty").mkdir()
    code, _, err = classify(capsys, videos[0][0], "--model", tmp_path / "empty")
    assert code == EXIT_MODEL and "config.json" in err
    code, _, err = classify(capsys, videos[0][0], "--model", model, "--top-k", 0)
    assert code == EXIT_USAGE and "--top-k" in err
    code, _, err = classify(capsys, videos[0][0], "--model", model, "--crops", 0)
    assert code == EXIT_USAGE
    code, _, err = classify(capsys, videos[0][0], "--model", model, "--video-backend", "ffmpeg")
    assert code == EXIT_USAGE and "backend" in err
    import torch

    if not torch.cuda.is_available():
        code, _, err = classify(capsys, videos[0][0], "--model", model, "--device", "cuda")
        assert code == EXIT_DEVICE and "CUDA" in err


def test_model_file_loads_through_the_official_converter(setup, capsys, tmp_path, monkeypatch):
    """--model FILE (not a folder) goes to vsuite.models.lvt.official.load_official_checkpoint."""
    import vsuite.models.lvt.official as official
    from vsuite.models.lvt import LvtForVideoClassification

    root, model, videos = setup
    calls = []

    def fake_official(path, **overrides):
        calls.append(str(path))
        return LvtForVideoClassification.from_pretrained(model).eval()

    monkeypatch.setattr(official, "load_official_checkpoint", fake_official)
    ckpt = tmp_path / "checkpoint_epoch_00030.pyth"
    ckpt.write_bytes(b"stands for an official checkpoint")
    code, out, err = classify(capsys, videos[0][0], "--model", ckpt, "--json", "--video-backend", "pyav")
    assert code == 0, err
    assert calls == [str(ckpt)]
    report = json.loads(out)
    assert report["model"] == str(ckpt)
    assert {p["label"] for p in report["videos"][0]["predictions"]} == {"left", "right"}
