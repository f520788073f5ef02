"""A tiny random causal LM judge built offline from a config, whose greedy reply is always one verdict.

Used by the Vript-RR open-ended tests (tests/metrics/test_vript_judge.py, tests/tasks/test_eval_vript.py).
"""

from __future__ import annotations

from vsuite.metrics.vript_judge import JUDGE_SYSTEM

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
NO_SYSTEM_TEMPLATE = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                      "{% endif %}" + TEMPLATE)


def build_judge(folder, verdict: str = "True", template: str | None = TEMPLATE):
    """A tiny random GPT-2 whose greedy output is always the token `{"rating": <verdict>}`: the final layer norm
    gives every position the same hidden state (weight 0, bias = that token's embedding), whose tied-output
    logit is made the largest by scaling the token's embedding up."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator([JUDGE_SYSTEM, "Question: AI assistant response: Ground truth answer:"] * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.add_tokens([f'{{"rating": {verdict}}}'])
    if template:
        tok.chat_template = template
    target = len(tok) - 1
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                                       bos_token_id=0, eos_token_id=0)).eval()
    with torch.no_grad():
        model.transformer.wte.weight[target] *= 50
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(model.transformer.wte.weight[target] / 50)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
