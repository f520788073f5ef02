"""Pretraining text pipeline: reading, packing, sharding across ranks, exact resume position."""

import json

import pytest
import torch

from vsuite.data.text import (
    PackedWindows,
    TextDataConfig,
    load_tokens,
    read_documents,
    resolve_path,
    shard,
    tokenize_documents,
)
from vsuite.data.tokenizers import ByteTokenizer
from vsuite.errors import DataError


def test_packing_concatenates_documents_with_eos_and_shifts_labels():
    tok = ByteTokenizer()
    stream = tokenize_documents(["ab", "cde"], tok)
    assert stream.tolist() == [97, 98, tok.eos_id, 99, 100, 101, tok.eos_id]
    with_bos = tokenize_documents(["ab"], tok, add_bos=True)
    assert with_bos.tolist() == [tok.bos_id, 97, 98, tok.eos_id]
    data = PackedWindows(torch.arange(11), seq_len=3, batch_size=1, shuffle=False)
    assert data.num_windows == 3  # windows of 4 tokens overlapping by one: [0..3], [3..6], [6..9]
    batches = [next(it) for it in [iter(data)] for _ in range(3)]
    assert [b["input_ids"].tolist() for b in batches] == [[[0, 1, 2]], [[3, 4, 5]], [[6, 7, 8]]]
    assert [b["labels"].tolist() for b in batches] == [[[1, 2, 3]], [[4, 5, 6]], [[7, 8, 9]]]
    targets = torch.cat([b["labels"].flatten() for b in batches])
    assert targets.tolist() == list(range(1, 10))  # every token but the first is a target exactly once


def test_max_tokens_cuts_the_stream():
    assert len(tokenize_documents(["abcdef", "ghij"], ByteTokenizer(), max_tokens=5)) == 5


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_disjoint_interleaved_and_complete(world):
    n = 30
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    parts = [shard(order, r, world) for r in range(world)]
    assert all(len(p) == n // world for p in parts)
    seen = torch.cat(parts).tolist()
    assert len(seen) == len(set(seen))  # disjoint
    assert set(seen) == set(order[: (n // world) * world].tolist())  # complete up to the remainder
    assert parts[1].tolist() == order[1::world][: n // world].tolist()  # interleaved
    # The ranks' data sources split every epoch the same way, with equal batch counts.
    tokens = torch.arange(10 * 8 + 1)
    sources = [PackedWindows(tokens, 8, 2, rank=r, world_size=world, seed=3) for r in range(world)]
    assert len({s.batches_per_epoch for s in sources}) == 1
    windows = [set(s.rank_windows(0).tolist()) for s in sources]
    assert all(not (a & b) for i, a in enumerate(windows) for b in windows[i + 1:])


def test_resume_position_is_exact_across_epochs():
    tokens = torch.arange(7 * 4 + 1)  # 7 windows of 4 -> 3 batches of 2 per epoch
    full = PackedWindows(tokens, 4, 2, seed=5)
    it = iter(full)
    expected = [next(it)["input_ids"] for _ in range(8)]  # crosses two epoch boundaries
    for k in range(8):
        first = PackedWindows(tokens, 4, 2, seed=5)
        it = iter(first)
        for _ in range(k):
            next(it)
        state = json.loads(json.dumps(first.state_dict()))  # survives JSON (trainer_state.json)
        again = PackedWindows(tokens, 4, 2, seed=5)
        again.load_state_dict(state)
        rest = iter(again)
        for j in range(k, 8):
            assert torch.equal(next(rest)["input_ids"], expected[j]), (k, j)
    assert not torch.equal(expected[0], expected[3])  # epochs are shuffled differently


def test_too_small_corpus_is_a_data_error():
    with pytest.raises(DataError, match="lower data.seq_len"):
        PackedWindows(torch.arange(20), 8, 4)


def test_sources_file_folder_glob_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("first\n\nsecond para")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.jsonl").write_text(json.dumps({"body": "j1"}) + "\n\n" + json.dumps({"body": "j2"}) + "\n")
    (sub / "ignored.bin").write_bytes(b"\x00")
    assert list(read_documents(str(tmp_path / "a.txt"))) == ["first\n\nsecond para"]
    assert list(read_documents(str(tmp_path / "a.txt"), documents="paragraph")) == ["first", "second para"]
    assert list(read_documents(str(tmp_path), text_field="body")) == ["first\n\nsecond para", "j1", "j2"]
    assert list(read_documents(str(tmp_path / "**" / "*.jsonl"), text_field="body")) == ["j1", "j2"]
    with pytest.raises(DataError, match="no string field 'text'"):
        list(read_documents(str(sub / "b.jsonl")))
    with pytest.raises(DataError, match="no text files"):
        list(read_documents(str(tmp_path / "nothing*.txt")))
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DataError, match="not UTF-8"):
        list(read_documents(str(tmp_path / "bad.txt")))


def test_relative_paths_fall_back_to_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "checkout"
    (root / "data").mkdir(parents=True)
    (root / "data" / "x.txt").write_text("hello")
    assert resolve_path("data/x.txt", [root]) == str(root / "data" / "x.txt")
    cfg = TextDataConfig(path="data/x.txt")
    assert load_tokens(cfg, ByteTokenizer(), [root]).tolist()[:5] == list(b"hello")


def test_datasets_folder_needs_the_library(tmp_path):
    import datasets  # installed by the test extra

    datasets.Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(str(tmp_path / "ds"))
    assert list(read_documents(str(tmp_path / "ds"))) == ["a", "b"]
