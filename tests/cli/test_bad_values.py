"""Bad flag values: exit 2 (or 3 for recipes), one `Error:` line naming the flag, and no torch import.

Each case runs `vsuite.cli.run` in a fresh interpreter that then asserts torch was never imported:
a bad value must be refused by the pure checks (or the recipe's typed configs) before any heavy
import or work starts, so the error appears at once instead of after minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_vsuite

PROBE = (
    "import json, sys\n"
    "from vsuite.cli import run\n"
    "rc = run(json.loads(sys.argv[1]))\n"
    "sys.stderr.write('TORCH-IMPORTED\\n' if 'torch' in sys.modules else '')\n"
    "sys.exit(rc)\n"
)


def run_probe(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


FILE = "a_file.txt"  # created in the working folder: an existing file where a folder is wanted

# (argv, exit code, text the one error line must contain)
CASES = [
    # caption (the video need not exist: the flags are refused first)
    (["caption", "v.mp4", "--frames", "0"], 2, "--frames"),
    (["caption", "v.mp4", "--max-new-tokens", "0"], 2, "--max-new-tokens"),
    (["caption", "v.mp4", "--batch-size", "0"], 2, "--batch-size"),
    (["caption", "v.mp4", "--video-backend", "ffmpeg"], 2, "--video-backend"),
    (["caption", "v.mp4", "--threshold", "-1"], 2, "--threshold"),
    (["caption", "v.mp4", "--min-scene-len", "0"], 2, "--min-scene-len"),
    (["caption", "v.mp4", "--out", FILE], 2, "--out"),
    (["caption", "v.mp4", "--device", "bogus"], 2, "--device"),
    (["caption", "v.mp4", "--dtype", "bogus"], 2, "--dtype"),
    # pretrain / finetune: --out is checked before the recipe is even read
    (["pretrain", "pretrain/tnl-tiny-cpu", "--out", FILE], 2, "--out"),
    (["finetune", "finetune/lvt-tiny-cpu", "--out", FILE], 2, "--out"),
    # eval lm: a window of 1 token predicts nothing (this once ran for ~8 minutes)
    (["eval", "lm", "--model", "m", "--data", "d.txt", "--seq", "1"], 2, "--seq"),
    (["eval", "lm", "--model", "m", "--data", "d.txt", "--seq", "64,1"], 2, "--seq"),
    (["eval", "lm", "--model", "m", "--data", "d.txt", "--batch-size", "0"], 2, "--batch-size"),
    (["eval", "lm", "--model", "m", "--data", "d.txt", "--max-tokens", "-1"], 2, "--max-tokens"),
    (["eval", "lm", "--model", "m", "--data", "d.txt", "--device", "bogus"], 2, "--device"),
    (["eval", "lm", "--model", "m", "--data", "d.txt", "--dtype", "float16"], 2, "--dtype"),
    # bench-kernels: typed flags, validated once by BenchConfig, named as flags (not '<defaults>')
    (["bench-kernels", "--heads", "0"], 2, "--heads 0"),
    (["bench-kernels", "--dim", "1000"], 2, "--dim 1000"),
    (["bench-kernels", "--batch", "0"], 2, "--batch 0"),
    (["bench-kernels", "--repeats", "0"], 2, "--repeats 0"),
    (["bench-kernels", "--budget", "0"], 2, "--budget 0"),
    (["bench-kernels", "--seq", "0"], 2, "--seq 0"),
    (["bench-kernels", "--seq", "1k"], 2, "--seq"),
    (["bench-kernels", "--mode", "sideways"], 2, "--mode sideways"),
    (["bench-kernels", "--device", "bogus"], 2, "--device"),
    (["bench-kernels", "--dtype", "float8"], 2, "--dtype"),
    (["bench-kernels", "--recipe", "bench-kernels/cpu-65k", "--heads", "0"], 2, "--heads 0"),
    # classify / eval classify
    (["classify", "v.mp4", "--model", "m", "--top-k", "0"], 2, "--top-k"),
    (["classify", "v.mp4", "--model", "m", "--clips", "0"], 2, "--clips"),
    (["classify", "v.mp4", "--model", "m", "--crops", "0"], 2, "--crops"),
    (["classify", "v.mp4", "--model", "m", "--video-backend", "ffmpeg"], 2, "--video-backend"),
    (["classify", "v.mp4", "--model", "m", "--device", "bogus"], 2, "--device"),
    (["eval", "classify", "--model", "m", "--data", "l.csv", "--clips", "0"], 2, "--clips"),
    (["eval", "classify", "--model", "m", "--data", "l.csv", "--crops", "0"], 2, "--crops"),
    (["eval", "classify", "--model", "m", "--data", "l.csv", "--limit", "-1"], 2, "--limit"),
    (["eval", "classify", "--model", "m", "--data", "l.csv", "--device", "bogus"], 2, "--device"),
    # eval vript-*
    (["eval", "vript-hal", "--data", "d", "--predictions", "p.csv", "--batch-size", "0"], 2, "--batch-size"),
    (["eval", "vript-rr", "--data", "d", "--model", "m", "--frames", "0"], 2, "--frames"),
    (["eval", "vript-ero", "--data", "d", "--predictions", "p.csv", "--dtype", "bogus"], 2, "--dtype"),
    (["eval", "vript-rr", "--data", "d", "--predictions", "p.csv", "--device", "bogus"], 2, "--device"),
    # recipes: an empty file is not a recipe
    (["recipes", "validate", "empty.toml", "--task", "bench-kernels"], 3, "no tables"),
]


@pytest.mark.parametrize("argv, code, words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_value_is_refused_before_torch(tmp_path, argv, code, words):
    (tmp_path / FILE).write_text("not a folder\n")
    (tmp_path / "empty.toml").write_text("")
    r = run_probe(argv, tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "TORCH-IMPORTED" not in lines, f"torch was imported before the bad value was refused: {r.stderr}"
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], r.stderr
    assert r.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([FILE, "empty.toml"])  # nothing written


def test_override_typo_names_the_override_not_the_shipped_file(tmp_path):
    r = run_vsuite("pretrain", "pretrain/tnl-tiny-cpu", "train.stpes=20", "--out", str(tmp_path / "run"))
    assert_one_line_error(r, 3)
    assert "override 'train.stpes=20': [train] stpes: unknown key" in r.stderr
    assert "tnl-tiny-cpu.toml" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_video_backend_choices_match_the_media_layer():
    from vsuite.cli import VIDEO_BACKENDS
    from vsuite.media.decode import BACKENDS

    assert tuple(VIDEO_BACKENDS) == tuple(BACKENDS)
