"""`vsuite finetune` (describe): the shipped tiny AVLFormer recipe overfits 8 synthetic audible clips (a red or
blue square moving left or right, a high beep or a low hum) and then describes every one with the right colour,
direction and sound; the batches are resumable; bad data is a one-line error."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, run_vsuite

from vsuite.data.favd_synthetic import SOUNDS, make_favd_synthetic

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny ops: one thread is fastest on a busy 2-core machine


def _wrong_words(text: str, colour: str, direction: str, pitch: str) -> list[str]:
    """Attribute words of the other clips that appear in `text` (it must name only its own)."""
    from vsuite.data.favd_synthetic import COLOURS, DIRECTIONS

    words = set(text.replace(".", " ").split())
    others = [c for c in COLOURS if c != colour] + [d for d in DIRECTIONS if d != direction]
    others += [w for p, (s, _) in SOUNDS.items() if p != pitch for w in (p, s)]
    return [w for w in others if w in words]


@pytest.mark.readme_block("finetune/favd-tiny-cpu")
def test_tiny_avlformer_describes_colour_direction_and_sound(readme_workspace, capsys):
    """The README's tiny run (8 synthetic clips, finetune/favd-tiny-cpu), checked here instead of trained twice."""
    from vsuite.data.favdbench import load_favdbench, split_description

    workspace = readme_workspace
    data, out = workspace / "data" / "favd-synth", workspace / "runs" / "favd-tiny-cpu"
    model = out / "model"
    assert (model / "tokenizer_config.json").is_file()
    assert json.loads((model / "vsuite_describe.json").read_text()) == {"lang": "en"}
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert losses[-1] < 0.3 * losses[0]
    # validation at the end: the val clips described and scored (CIDEr-D x 10 as coco-caption reports it;
    # a memorised set scores near the maximum), the best kept as OUT/best, a loadable describer
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval_cider"' in line]
    assert evals and evals[-1]["step"] == 400 and evals[-1]["eval_cider"] > 5.0 and evals[-1]["eval_bleu_4"] > 0.5
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["metric"] == "cider" and best["subset"] == "val" and best["scores"]["cider"] == evals[-1]["eval_cider"]
    assert (out / "best" / "tokenizer_config.json").is_file() and (out / "best" / "vsuite_describe.json").is_file()

    from vsuite.models.describer import describe_clips

    clips = load_favdbench(data, "test")
    got = describe_clips(str(model), clips, lang="en", device="cpu", batch_size=8)
    assert len(clips) == 8
    for clip in clips:
        _, colour, direction, pitch = clip.ytid.split("-")[-4:]
        summary, visual, audio = split_description(got[clip.id], "en")
        assert colour in summary.split() and direction in summary.replace(".", " ").split(), (clip.id, got[clip.id])
        assert f"{pitch} {SOUNDS[pitch][0]}" in " ".join(audio), (clip.id, got[clip.id])
        assert visual and not _wrong_words(got[clip.id], colour, direction, pitch), got[clip.id]

    one = data / "videos" / "test" / "synth-test-blue-left-low_0_1000.mp4"
    from vsuite.cli import run as cli_run

    capsys.readouterr()
    code = cli_run(["describe", str(one), "--model", str(model), "--json", "--beams", "2", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["summary"] == "a blue square moves to the left." and doc["audio"] == ["a low hum is heard."]


def test_batches_are_deterministic_and_resumable(tmp_path):
    import torch

    from vsuite.data.favdbench import load_favdbench
    from vsuite.models.avlformer import AvlformerConfig
    from vsuite.models.avlformer.describe_config import build_word_tokenizer, tokenizer_ids
    from vsuite.tasks.finetune_describe import DescribeBatches

    data = make_favd_synthetic(tmp_path / "favd", colours=("red",))
    clips = load_favdbench(data, "train")
    tok = build_word_tokenizer([c.caption for c in clips])
    config = AvlformerConfig(num_frames=8, image_size=32, swin_embed_dim=16, swin_depths=[2, 2], swin_num_heads=[2, 4],
                             swin_window_size=[2, 4, 4], sample_rate=16000, audio_seconds=1.0, n_mels=32, n_fft=512,
                             win_length=400, hop_length=160, fmax=7000.0, passt_embed_dim=32, passt_depth=1,
                             passt_num_heads=2, passt_input_tdim=101, passt_patchout_t=3, passt_patchout_f=0,
                             max_seq_length=32, max_gen_length=32, max_position_embeddings=64, **tokenizer_ids(tok))

    def make():
        return DescribeBatches(clips, tok, config, batch_size=2, shuffle=True, seed=3)

    first = make()
    it = iter(first)
    batches = [next(it) for _ in range(3)]
    b = batches[0]
    assert b["pixel_values"].shape == (2, 8, 3, 32, 32) and b["audio_values"].shape == (2, 16000)
    assert b["input_ids"].shape == b["output_token_ids"].shape == (2, 32) and b["masked_ids"].shape == (2, 75)
    assert (b["masked_pos"].sum(1) == (b["masked_ids"] != -1).sum(1)).all()
    resumed = make()
    state = dict(first.state_dict())
    state.update(epoch=1, index=0)  # 4 clips / batch 2: batch 3 is the first of epoch 1
    resumed.load_state_dict(state)
    again = next(iter(resumed))
    assert all(torch.equal(again[k], batches[2][k]) for k in again)


def test_missing_data_root_is_one_line(tmp_path):
    res = run_vsuite("finetune", "finetune/favd-tiny-cpu", f"data.root={tmp_path / 'nowhere'}",
                     "--out", str(tmp_path / "run"))
    assert_one_line_error(res, 5)
    assert "FAVDBench" in res.stderr
