"""vsuite.models.vlm on tiny random SmolVLM2 (Idefics3) and Qwen2-VL models built offline."""

import numpy as np
import pytest
import torch
from tiny_vlm import qwen2vl_dir, qwen25vl_dir, smolvlm_dir  # noqa: F401  (fixtures)

from vsuite.errors import ModelNotFoundError
from vsuite.models.vlm import VideoLM, VideoPrompt

torch.set_num_threads(1)


def _items():
    rng = np.random.default_rng(0)
    return [VideoPrompt(rng.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8), [24, 48, 72], 24.0, 5.0,
                        "Describe the clip.", system="You are a director."),
            VideoPrompt(rng.integers(0, 255, (5, 64, 96, 3), dtype=np.uint8), [10, 20, 30, 40, 50], 24.0, 5.0,
                        "Describe it.")]


@pytest.mark.parametrize("fixture", ["smolvlm_dir", "qwen2vl_dir", "qwen25vl_dir"])
def test_generate_batch_and_training_batch(fixture, request):
    vlm = VideoLM.load(str(request.getfixturevalue(fixture)), device="cpu")
    out = vlm.generate(_items(), max_new_tokens=8)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    answers = ["a red scene", "blue"]
    batch = vlm.training_batch(_items(), answers)
    labels, ids = batch["labels"], batch["input_ids"]
    for row, answer in enumerate(answers):
        end = int(batch["attention_mask"][row].sum())  # right padding: the real tokens come first
        # where the answer starts, found from the text: the last token from which the decoded tail holds it
        start = max(q for q in range(end) if answer in vlm.tokenizer.decode(ids[row, q:end]))
        assert answer not in vlm.tokenizer.decode(ids[row, :start])
        assert (labels[row, :start] == -100).all(), "every prompt token (system, frames, question) is masked"
        assert (labels[row, start:end] == ids[row, start:end]).all(), "the answer and its end-of-turn are scored"
        assert (labels[row, end:] == -100).all(), "padding is masked"
    loss = vlm.model(**batch).loss
    assert torch.isfinite(loss)


def test_sampling_rate_from_indices():
    from vsuite.models.vlm import sampling_rate

    assert sampling_rate(_items()[0]) == pytest.approx(1.0)  # frames 1 s apart at 24 fps
    assert sampling_rate(_items()[1]) == pytest.approx(2.4)


def test_smolvlm_prompt_carries_frame_times(smolvlm_dir):
    vlm = VideoLM.load(str(smolvlm_dir), device="cpu")
    item = _items()[0]
    inputs = vlm._encode([vlm.chat_text(item)], [item])
    text = vlm.tokenizer.decode(inputs["input_ids"][0])
    assert "Frame from 00:01" in text and "Frame from 00:03" in text  # indices 24, 72 at 24 fps


def test_missing_folder_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFoundError):
        VideoLM.load(str(tmp_path / "nope"), device="cpu")
