"""Pretraining text: corpus files -> token stream -> packed fixed-length windows, sharded and resumable.

Sources (`data.path`): a text file, a folder (every *.txt / *.md / *.jsonl inside, sorted), a glob, a
JSONL file (one document per line, text in `data.text_field`), or a folder saved with the optional
`datasets` library (`load_from_disk`; only when `datasets` is installed).

Packing: every document is encoded (optionally after bos), followed by eos, and concatenated into one
stream of T tokens. Window i is tokens[i*L : i*L + L + 1] (L = seq_len); input_ids = window[:-1] and
labels = window[1:], so labels are already shifted: labels[t] is the token after input_ids[t], and
every token but the first is a target exactly once per epoch.

Order and sharding: each epoch visits the windows in a permutation seeded by (seed, epoch) (or in
order if shuffle=false); rank r of W takes positions r, r+W, r+2W, ... of it (disjoint, interleaved),
cut to the same count on every rank (W-1 windows at most are left out per epoch), in batches of
batch_size (a last partial batch is left out). The position {epoch, index} after k batches is exact:
load_state_dict() continues with the batch an uninterrupted run would have drawn next.
"""

from __future__ import annotations

import glob as globlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataError

TEXT_SUFFIXES = {".txt", ".text", ".md"}
JSONL_SUFFIXES = {".jsonl", ".json"}


class TextDataConfig(BaseModel):
    """The [data] table of a pretrain recipe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    path: str = Field("", description="file, folder, glob, JSONL file or `datasets` folder; relative paths are "
                                      "tried from the working directory, then from the vsuite checkout")
    format: Literal["auto", "text", "jsonl", "datasets"] = "auto"
    text_field: str = "text"  # JSONL / datasets column holding the text
    split: str = "train"  # datasets: the split of a DatasetDict
    documents: Literal["file", "paragraph", "line"] = "file"  # text files: what one document is
    tokenizer: str = "byte"  # "byte" (built in), a folder with tokenizer files, or a Hugging Face Hub id
    seq_len: int = Field(512, ge=1)
    batch_size: int = Field(8, ge=1, description="windows per micro-batch on each rank")
    shuffle: bool = True
    seed: int = 0
    add_bos: bool = False  # put bos before every document (eos always follows one)
    max_tokens: int = Field(0, ge=0, description="use only the first N tokens of the corpus; 0 = all")


# ----------------------------------------------------------------------------- reading


def resolve_path(path: str, roots: list[Path] = ()) -> str:
    """`path` as given if it exists (or matches a glob) from the working directory, else under a root."""
    if not path:
        raise DataError("data.path is empty: set it to a text file, folder, glob or JSONL file")
    if Path(path).expanduser().exists() or globlib.glob(path, recursive=True) or Path(path).is_absolute():
        return str(Path(path).expanduser())
    for root in roots:
        candidate = Path(root) / path
        if candidate.exists() or globlib.glob(str(candidate), recursive=True):
            return str(candidate)
    return path


def _is_datasets_folder(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json", "state.json"))


def list_files(path: str) -> list[Path]:
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES | JSONL_SUFFIXES)
    else:
        files = sorted(Path(f) for f in globlib.glob(path, recursive=True) if Path(f).is_file())
    if not files:
        raise DataError(f"no text files at {path} (give a file, a folder of .txt/.md/.jsonl files, or a glob)")
    return files


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start}); convert it or leave it out") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None


def _split_documents(text: str, mode: str) -> list[str]:
    if mode == "file":
        return [text] if text else []
    if mode == "line":
        return [line for line in text.splitlines() if line.strip()]
    return [part.strip("\n") for part in text.split("\n\n") if part.strip()]


def _jsonl_documents(path: Path, field: str) -> Iterator[str]:
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise DataError(f"{path}:{number}: no string field {field!r} (set data.text_field)")
        yield record[field]


def _datasets_documents(path: Path, field: str, split: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path} is a `datasets` folder but the datasets library is not installed "
                        "(pip install datasets), or export it to JSONL") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"{path} has no split {split!r} (it has {', '.join(ds)}); set data.split")
        ds = ds[split]
    if field not in ds.column_names:
        raise DataError(f"{path} has no column {field!r} (it has {', '.join(ds.column_names)}); set data.text_field")
    yield from ds[field]


def read_documents(path: str, *, format: str = "auto", text_field: str = "text", documents: str = "file",
                   split: str = "train") -> Iterator[str]:
    """The documents of a corpus, in a fixed order (files sorted by path)."""
    p = Path(path).expanduser()
    if format == "datasets" or (format == "auto" and _is_datasets_folder(p)):
        yield from _datasets_documents(p, text_field, split)
        return
    for file in list_files(path):
        is_jsonl = format == "jsonl" or (format == "auto" and file.suffix.lower() in JSONL_SUFFIXES)
        if is_jsonl:
            yield from _jsonl_documents(file, text_field)
        else:
            yield from _split_documents(_read_text(file), documents)


def tokenize_documents(docs, tokenizer, *, add_bos: bool = False, append_eos: bool = True,
                       max_tokens: int = 0) -> torch.Tensor:
    """One int64 stream: [bos] doc [eos] [bos] doc [eos] ... (cut at max_tokens if > 0)."""
    if append_eos and tokenizer.eos_id is None:
        raise DataError(f"tokenizer {tokenizer.name} has no eos token to separate documents")
    if add_bos and tokenizer.bos_id is None:
        raise DataError(f"tokenizer {tokenizer.name} has no bos token (set data.add_bos=false)")
    parts, total = [], 0
    for doc in docs:
        ids = tokenizer.encode_bytes(doc) if hasattr(tokenizer, "encode_bytes") else torch.tensor(tokenizer.encode(doc))
        ids = ids.to(torch.int64)
        if add_bos:
            ids = torch.cat([torch.tensor([tokenizer.bos_id]), ids])
        if append_eos:
            ids = torch.cat([ids, torch.tensor([tokenizer.eos_id])])
        parts.append(ids)
        total += len(ids)
        if max_tokens and total >= max_tokens:
            break
    stream = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)
    return stream[:max_tokens] if max_tokens else stream


def load_tokens(config: TextDataConfig, tokenizer, roots: list[Path] = ()) -> torch.Tensor:
    path = resolve_path(config.path, roots)
    docs = read_documents(path, format=config.format, text_field=config.text_field, documents=config.documents,
                          split=config.split)
    return tokenize_documents(docs, tokenizer, add_bos=config.add_bos, max_tokens=config.max_tokens)


# ----------------------------------------------------------------------------- packing and sharding


def num_windows(num_tokens: int, seq_len: int) -> int:
    return max(0, (num_tokens - 1) // seq_len)


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank r's windows: positions r, r+W, r+2W, ... of `order`, the same count on every rank."""
    per_rank = len(order) // world_size
    return order[rank::world_size][:per_rank]


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class PackedWindows:
    """Batches {"input_ids", "labels"} of packed windows for one rank; endless over epochs, resumable."""

    def __init__(self, tokens: torch.Tensor, seq_len: int, batch_size: int, *, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, seed: int = 0):
        self.tokens, self.seq_len, self.batch_size = tokens, seq_len, batch_size
        self.rank, self.world_size, self.shuffle, self.seed = rank, world_size, shuffle, seed
        self.num_windows = num_windows(len(tokens), seq_len)
        self.batches_per_epoch = (self.num_windows // world_size) // batch_size
        if self.batches_per_epoch == 0:
            raise DataError(f"the corpus has {len(tokens)} tokens: {self.num_windows} window(s) of seq_len {seq_len}, "
                            f"fewer than batch_size {batch_size} x {world_size} rank(s); use more text or lower "
                            "data.seq_len / data.batch_size")
        self.epoch, self.index = 0, 0

    def window(self, i: int) -> torch.Tensor:
        start = i * self.seq_len
        return self.tokens[start:start + self.seq_len + 1]

    def rank_windows(self, epoch: int) -> torch.Tensor:
        """This rank's window indices for an epoch, in visiting order (whole batches only)."""
        mine = shard(epoch_order(self.num_windows, epoch, self.seed, self.shuffle), self.rank, self.world_size)
        return mine[: self.batches_per_epoch * self.batch_size]

    def __iter__(self) -> Iterator[dict]:
        while True:
            order = self.rank_windows(self.epoch)
            while self.index < self.batches_per_epoch:
                ids = order[self.index * self.batch_size:(self.index + 1) * self.batch_size]
                self.index += 1
                windows = torch.stack([self.window(int(i)) for i in ids])
                yield {"input_ids": windows[:, :-1].contiguous(), "labels": windows[:, 1:].contiguous()}
            self.epoch, self.index = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "num_windows": self.num_windows,
                "seq_len": self.seq_len, "batch_size": self.batch_size, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        from ..console import warn

        for key in ("num_windows", "seq_len", "batch_size", "world_size", "seed"):
            if key in state and state[key] != getattr(self, key):
                warn(f"data position saved with {key}={state[key]}, now {getattr(self, key)}: the batches after "
                     "resuming will not be the ones the original run would have seen")
        self.epoch, self.index = int(state["epoch"]), min(int(state["index"]), self.batches_per_epoch)
