"""VideoLM answer prefixes: the reply is forced to start with a given text (Vript-Hard's "Best option:(") on the
tiny random SmolVLM2 and Qwen2-VL models; the returned answer is the prefix followed by the continuation."""

import numpy as np
import pytest
import torch
from tiny_vlm import qwen2vl_dir, qwen25vl_dir, smolvlm_dir  # noqa: F401  (fixtures)

from vsuite.models.vlm import VideoLM, VideoPrompt, join_prefix

torch.set_num_threads(1)
PREFIX = "Best option:("


def _item(system="Pick one."):
    rng = np.random.default_rng(1)
    return VideoPrompt(rng.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8), [24, 48, 72], 24.0, 5.0,
                       "Question: q?\nOptions:\n(A) x\n(B) y", system=system)


def _capture(vlm):
    """Wrap model.generate to record the input ids and the new tokens of each call."""
    seen = []
    original = vlm.model.generate

    def generate(**kwargs):
        out = original(**kwargs)
        seen.append((kwargs["input_ids"], out[:, kwargs["input_ids"].shape[1]:]))
        return out

    vlm.model.generate = generate
    return seen


@pytest.mark.parametrize("fixture, assistant_start", [("smolvlm_dir", "<end_of_utterance>\nAssistant: "),
                                                      ("qwen2vl_dir", "<|im_end|>\n<|im_start|>assistant\n")])
def test_prefix_forced_and_returned(fixture, assistant_start, request):
    vlm = VideoLM.load(str(request.getfixturevalue(fixture)), device="cpu")
    item = _item()
    # where an assistant answer starts in this template (SmolVLM2: "Assistant: ", one space more than its
    # generation prompt "Assistant:"), then the prefix
    text = vlm.prompt_text(item, PREFIX)
    assert text.endswith(assistant_start + PREFIX) and text.startswith(vlm.chat_text(item))
    assert vlm.prompt_text(item) == vlm.chat_text(item)

    seen = _capture(vlm)
    forced = vlm.generate_full([item, _item(None)], max_new_tokens=6, answer_prefix=[PREFIX, ""])
    (ids, new), = seen
    tok = vlm.tokenizer
    prompt0 = tok.decode(ids[0], skip_special_tokens=False)
    prompt1 = tok.decode(ids[1], skip_special_tokens=False)
    assert prompt0.endswith(assistant_start + PREFIX), prompt0[-80:]  # the model continues the prefix
    assert not prompt1.rstrip().endswith(PREFIX)  # per-item prefixes: the second request has none
    continuation = tok.decode(new[0], skip_special_tokens=True)
    assert forced[0].text == join_prefix(PREFIX, continuation) and forced[0].text.startswith(PREFIX)
    assert forced[1].text == tok.decode(new[1], skip_special_tokens=True).strip()
    assert forced[0].new_tokens == 6  # only generated tokens are counted, not the prefix

    plain = vlm.generate([item], max_new_tokens=6)
    ids_plain = seen[1][0]
    assert ids_plain.shape[1] < ids.shape[1]  # without a prefix the prompt is shorter: the prefix was really sent
    assert not plain[0].startswith(PREFIX) or plain[0] != forced[0].text


def test_join_prefix():
    assert join_prefix("Best option:(", "A) a cup.\n") == "Best option:(A) a cup."
    assert join_prefix("Scene (", " B), Scene (A)") == "Scene (B), Scene (A)"
    assert join_prefix("The answer is", " a cup.") == "The answer is a cup."
    assert join_prefix("", "  text \n") == "text"


def test_prefix_count_must_match(smolvlm_dir):
    vlm = VideoLM.load(str(smolvlm_dir), device="cpu")
    with pytest.raises(ValueError, match="2 answer prefixes for 1 requests"):
        vlm.generate([_item()], max_new_tokens=2, answer_prefix=["a", "b"])


def test_prefixes_follow_their_items_across_fps_groups(qwen25vl_dir):
    """Qwen2.5-VL batches only requests sampled at the same rate: each group keeps its own items' prefixes."""
    vlm = VideoLM.load(str(qwen25vl_dir), device="cpu")
    rng = np.random.default_rng(2)
    slow = VideoPrompt(rng.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8), [24, 48, 72], 24.0, 5.0, "q")
    fast = VideoPrompt(rng.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8), [10, 20, 30], 24.0, 5.0, "q")
    seen = _capture(vlm)
    out = vlm.generate([slow, fast, slow], max_new_tokens=3, answer_prefix=["", PREFIX, "Scene ("])
    assert len(seen) == 2  # two rates: two generate calls
    assert out[1].startswith(PREFIX) and out[2].startswith("Scene (") and not out[0].startswith(("Best", "Scene ("))
    prompts = [vlm.tokenizer.decode(ids[r]) for ids, _ in seen for r in range(ids.shape[0])]
    assert sum(p.endswith("<|im_start|>assistant\n" + PREFIX) for p in prompts) == 1
    assert sum(p.endswith("<|im_start|>assistant\nScene (") for p in prompts) == 1
