"""Tokenizers: the built-in byte tokenizer round-trips and saves itself into a checkpoint folder."""

import pytest

from vsuite.data.tokenizers import BYTE_FILE, ByteTokenizer, load_tokenizer, load_tokenizer_from
from vsuite.errors import DataError, ModelNotFoundError


def test_byte_round_trip_unicode():
    tok = ByteTokenizer()
    text = "In the beginning — Ἐν ἀρχῇ, 太初 🌍\n"
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids) and len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id]) == text  # specials are dropped
    assert tok.encode_bytes(text).tolist() == ids
    assert tok.vocab_size == 259 and len({tok.bos_id, tok.eos_id, tok.pad_id}) == 3


def test_byte_save_load(tmp_path):
    ByteTokenizer().save(tmp_path)
    assert (tmp_path / BYTE_FILE).is_file()
    again = load_tokenizer_from(tmp_path)
    assert isinstance(again, ByteTokenizer) and again.decode(again.encode("abc")) == "abc"
    assert isinstance(load_tokenizer(str(tmp_path)), ByteTokenizer)
    (tmp_path / BYTE_FILE).write_text('{"type": "other"}')
    with pytest.raises(DataError):
        load_tokenizer_from(tmp_path)


def test_missing_tokenizer_is_a_model_error(tmp_path):
    with pytest.raises(ModelNotFoundError):
        load_tokenizer(str(tmp_path / "no-such-folder"))
    with pytest.raises(ModelNotFoundError):
        load_tokenizer_from(tmp_path)  # a folder without tokenizer files


def test_hugging_face_tokenizer_from_a_folder(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<eos>": 0, "<unk>": 1, "in": 2, "the": 3, "beginning": 4}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", unk_token="<unk>").save_pretrained(tmp_path)
    tok = load_tokenizer(str(tmp_path))
    assert tok.encode("in the beginning") == [2, 3, 4]
    assert tok.eos_id == 0 and tok.pad_id == 0 and tok.vocab_size == 5
    from vsuite.data.text import tokenize_documents

    assert tokenize_documents(["in the", "beginning"], tok).tolist() == [2, 3, 0, 4, 0]
    tok.save(tmp_path / "copy")
    assert load_tokenizer_from(tmp_path / "copy").encode("the") == [3]


def test_long_texts_are_encoded_in_pieces_at_line_starts():
    from vsuite.data.tokenizers import _pieces

    text = "alpha beta\n  gamma\ndelta\n\nepsilon zeta\n" * 50
    pieces = list(_pieces(text, 64))
    assert "".join(pieces) == text and len(pieces) > 5
    assert all(p.endswith("\n") and not p.startswith((" ", "\n")) for p in pieces[:-1])
