"""The [model] table of a FAVD describe finetune, and the tokenizers AVLFormer uses.

Tokenizers (saved in the model folder; `AutoTokenizer.from_pretrained(folder)` reloads either kind):
  - a BERT WordPiece tokenizer (`tokenizer = "bert-base-uncased"` or a local folder): the official model's;
  - `tokenizer = "words"`: a word-level tokenizer built from the training captions (BERT normalisation and
    pre-tokenisation: lower case, punctuation split, each Chinese character a word) with [PAD]=0, [UNK]=1,
    [CLS]=2, [SEP]=3, [MASK]=4; for tiny models that must learn quickly.
The model config's vocab_size and pad/cls/sep/mask ids always follow the tokenizer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WORD_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class DescribeModelConfig(BaseModel):
    """[model] of `vsuite finetune` with [task] kind = "describe"."""

    model_config = ConfigDict(extra="forbid", strict=True)

    init: str = Field("", description="start from: a vsuite AVLFormer folder, the official AVLFormer model.bin "
                                      "(with `config` giving its sizes), or empty for a new model")
    config: dict[str, Any] = Field(default_factory=dict, description="AvlformerConfig fields of a new model")
    tokenizer: str = Field("words", description="'words' (built from the training captions), or a BERT "
                                                "tokenizer folder / Hub id such as bert-base-uncased")
    swin_init: str = Field("", description="published Video Swin checkpoint (.pth) for a new model's video encoder")
    passt_init: str = Field("", description="published PaSST checkpoint (.pt) for a new model's audio encoder")
    freeze_swin: bool = Field(False, description="keep the Video Swin weights fixed (official --freeze_backbone)")
    freeze_passt: bool = Field(False, description="keep the PaSST weights fixed (official --freeze_passt: "
                                                  "mel and net; its output linear layer still trains)")
    official_lm_targets: bool = Field(False, description="LM targets as the official code builds them (masked "
                                                         "tokens as targets, see masks.tensorize_caption)")


def build_word_tokenizer(captions: list[str]):
    """A PreTrainedTokenizerFast over the words of `captions` (sorted, after the five specials)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    norm = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True, clean_text=True,
                                      strip_accents=None)
    pre = pre_tokenizers.BertPreTokenizer()
    words = set()
    for text in captions:
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    vocab = {tok: i for i, tok in enumerate(WORD_SPECIALS)}
    for w in sorted(words - set(WORD_SPECIALS)):
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = norm, pre
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, "word ." -> "word."
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def tokenizer_ids(tokenizer) -> dict[str, int]:
    """The AvlformerConfig fields that follow a tokenizer."""
    return {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id,
            "mask_token_id": tokenizer.mask_token_id}


def caption_ids(tokenizer, text: str) -> list[int]:
    """Token ids of a caption without special tokens (the official tokenizer.tokenize + convert)."""
    return tokenizer.encode(text, add_special_tokens=False)


def decode_caption(tokenizer, ids: list[int], lang: str = "en") -> str:
    """Text of generated ids (specials skipped). Chinese: the characters joined without spaces."""
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    if lang == "zh":
        import re

        text = re.sub(r"(?<=[^\x00-\x7f])\s+(?=[^\x00-\x7f])", "", text)
    return text.strip()


__all__ = ["DescribeModelConfig", "build_word_tokenizer", "caption_ids", "decode_caption", "tokenizer_ids"]
