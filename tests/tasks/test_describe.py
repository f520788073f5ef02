"""`vsuite describe`: bad inputs are one-line errors with their exit codes before any model work; a tiny
saved AVLFormer describes a clip (plain and --json, greedy and beams); describe_clips maps ids to text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vsuite.cli import run as cli_run


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random tiny AVLFormer + word tokenizer saved as `vsuite finetune` saves it (8 frames, 1 s of 16 kHz)."""
    import torch

    from vsuite.models.avlformer import AvlformerConfig, AvlformerForDescription
    from vsuite.models.avlformer.describe_config import build_word_tokenizer, tokenizer_ids
    from vsuite.tasks.finetune_describe import save_describe_model

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "models" / "avlformer"))
    from avlformer_tiny import TINY

    tok = build_word_tokenizer(["a red square moves to the left. a high beep is heard."])
    torch.manual_seed(0)
    model = AvlformerForDescription(AvlformerConfig(**{**TINY, "max_gen_length": 8, **tokenizer_ids(tok)}))
    return save_describe_model(model, tok, tmp_path_factory.mktemp("describer") / "model", "en")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from vsuite.media.synth import make_bar_video, sine, write_video

    folder = tmp_path_factory.mktemp("clips")
    import numpy as np

    frames = [np.full((32, 32, 3), 30 * i, np.uint8) for i in range(8)]
    write_video(folder / "sound.mp4", frames, 8, audio=sine(440.0, 1.0, 16000), sample_rate=16000)
    make_bar_video(folder / "silent.mp4")
    return folder


def _run(argv, capsys):
    code = cli_run(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_no_audio_track_is_exit_5_before_the_model(clips, capsys):
    code, out, err = _run(["describe", str(clips / "silent.mp4"), "--model", "/nonexistent/model"], capsys)
    assert code == 5 and out == ""
    assert "no audio stream" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_flags_and_missing_things(clips, tiny_model, capsys):
    code, out, err = _run(["describe", str(clips / "sound.mp4"), "--lang", "fr"], capsys)
    assert code == 2 and "--lang" in err and out == ""
    code, out, err = _run(["describe", str(clips / "sound.mp4"), "--beams", "0"], capsys)
    assert code == 2 and "--beams" in err
    code, out, err = _run(["describe", str(clips / "missing.mp4"), "--model", str(tiny_model)], capsys)
    assert code == 5 and out == ""
    code, out, err = _run(["describe", str(clips / "sound.mp4")], capsys)
    assert code == 4 and "--model" in err and out == ""
    code, out, err = _run(["describe", str(clips / "sound.mp4"), "--model", str(clips / "nowhere")], capsys)
    assert code == 4 and out == ""
    code, out, err = _run(["describe", str(clips / "sound.mp4"), "--model", str(tiny_model), "--lang", "zh"], capsys)
    assert code == 2 and "trained on en" in err and out == ""


def test_describe_plain_and_json(clips, tiny_model, capsys):
    code, out, err = _run(["describe", str(clips / "sound.mp4"), "--model", str(tiny_model)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["summary", "visual", "audio"]
    code, out, err = _run(["describe", str(clips / "sound.mp4"), "--model", str(tiny_model), "--json",
                           "--beams", "2"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["decoder"]["num_beams"] == 2 and doc["protocol"]["frames"] == 8
    assert doc["protocol"]["audio_sample_rate"] == 16000 and doc["lang"] == "en"
    assert isinstance(doc["description"], str) and isinstance(doc["visual"], list)


def test_describe_clips_maps_ids(clips, tiny_model):
    from vsuite.data.favdbench import FAVDClip
    from vsuite.models.describer import describe_clips

    items = [FAVDClip("abc_0_1000", "abc", 0.0, 1.0, "", clips / "sound.mp4"), ("xyz_0_1000", clips / "sound.mp4")]
    got = describe_clips(str(tiny_model), items, lang="en", device="cpu", beams=1, batch_size=2)
    assert set(got) == {"abc_0_1000", "xyz_0_1000"} and got["abc_0_1000"] == got["xyz_0_1000"]


def test_help_lists_the_command():
    out = subprocess.run([sys.executable, "-m", "vsuite", "describe", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--beams" in out.stdout and "--lang" in out.stdout
