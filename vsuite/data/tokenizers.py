"""Tokenizers for the text pipeline: a built-in byte-level one, or any Hugging Face tokenizer.

  load_tokenizer("byte")            ByteTokenizer: ids 0-255 are the UTF-8 bytes, 256 bos, 257 eos, 258 pad
  load_tokenizer("gpt2" | FOLDER)   a Hugging Face tokenizer (AutoTokenizer) by Hub id or local folder
  load_tokenizer_from(folder)       whatever a checkpoint folder holds (vsuite_tokenizer.json -> byte)

Both kinds share one small interface: encode(text) -> list[int] (no special tokens), decode(ids),
vocab_size, bos_id / eos_id / pad_id, name, save(folder). The byte tokenizer needs no files and no
network; it saves itself as vsuite_tokenizer.json in a checkpoint so `vsuite eval lm` can reuse it.
Hub ids go through vsuite.hub.resolve_model_dir (offline-aware errors, exit 4).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError, ModelNotFoundError

BYTE_FILE = "vsuite_tokenizer.json"


class ByteTokenizer:
    """UTF-8 bytes as tokens: nothing to download, every text encodes, vocab 259."""

    name = "byte"
    bos_id, eos_id, pad_id = 256, 257, 258
    vocab_size = 259

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_bytes(self, text: str):
        """Faster encode for long texts: a uint8 tensor."""
        import torch

        data = text.encode("utf-8")
        return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def save(self, folder: str | Path) -> None:
        record = {"type": "byte", "vocab_size": self.vocab_size, "bos_id": self.bos_id, "eos_id": self.eos_id,
                  "pad_id": self.pad_id}
        (Path(folder) / BYTE_FILE).write_text(json.dumps(record, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> ByteTokenizer:
        path = Path(folder) / BYTE_FILE
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read tokenizer {path}: {err}") from None
        tok = cls()
        if record.get("type") != "byte" or record.get("vocab_size") != tok.vocab_size:
            raise DataError(f"{path} describes a tokenizer this version does not know: {record}")
        return tok


class HFTokenizer:
    """A Hugging Face tokenizer behind the same interface as ByteTokenizer."""

    def __init__(self, tokenizer, name: str):
        self.tok, self.name = tokenizer, name
        self.vocab_size = len(tokenizer)
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

    def encode(self, text: str) -> list[int]:
        """Long texts go in pieces of about CHUNK characters, cut before a line that starts with a
        non-space character (a boundary the usual pre-tokenizers cut at anyway), as one batch call."""
        pieces = list(_pieces(text, self.CHUNK))
        if len(pieces) == 1:
            return self.tok(text, add_special_tokens=False)["input_ids"]
        return [i for ids in self.tok(pieces, add_special_tokens=False)["input_ids"] for i in ids]

    CHUNK = 1 << 20

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])

    def save(self, folder: str | Path) -> None:
        self.tok.save_pretrained(str(folder))


def _pieces(text: str, size: int):
    start = 0
    while len(text) - start > size:
        cut = start + size
        while cut < len(text) and not (text[cut - 1] == "\n" and not text[cut].isspace()):
            cut += 1
        yield text[start:cut]
        start = cut
    yield text[start:]


def load_tokenizer(ref: str):
    """"byte", a local folder with tokenizer files, or a Hugging Face Hub id."""
    if ref == "byte":
        return ByteTokenizer()
    path = Path(ref).expanduser()
    if path.is_dir():
        return load_tokenizer_from(path)
    from ..hub import resolve_model_dir

    return load_tokenizer_from(resolve_model_dir(ref))


def load_tokenizer_from(folder: str | Path):
    """The tokenizer saved in a model or checkpoint folder."""
    folder = Path(folder)
    if (folder / BYTE_FILE).is_file():
        return ByteTokenizer.load(folder)
    return _auto_tokenizer(str(folder))


def _auto_tokenizer(ref: str):
    import os

    from transformers import AutoTokenizer

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    try:
        tok = AutoTokenizer.from_pretrained(ref, local_files_only=offline or Path(ref).is_dir())
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"no tokenizer at {ref} ({str(err).splitlines()[0][:160]}); pass data.tokenizer=byte, "
                                 "a folder with tokenizer files, or a Hub id available offline") from None
    return HFTokenizer(tok, ref)
