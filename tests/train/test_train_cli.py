"""The trainer through `vsuite pretrain` in subprocesses: preemption + exact resume, torchrun, divergence."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import assert_one_line_error, run_vsuite

from vsuite.train import checkpoint as C
from vsuite.train.metrics import read

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "data" / "corpus" / "kjv-valid.txt"

TINY_LLAMA = f"""
[model]
model_type = "llama"
[model.config]
hidden_size = 16
intermediate_size = 32
num_hidden_layers = 2
num_attention_heads = 2
num_key_value_heads = 2
max_position_embeddings = 64
attention_dropout = 0.1  # random streams must be restored on resume too

[data]
path = "{CORPUS}"
seq_len = 32
batch_size = 4

[train]
steps = 12
lr = 1e-2
warmup_steps = 2
log_every = 1
device = "cpu"
"""


def recipe(tmp_path: Path) -> str:
    path = tmp_path / "tiny-llama.toml"
    path.write_text(TINY_LLAMA)
    return str(path)


def curve(run_dir: Path) -> list[tuple]:
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in read(run_dir / "metrics.jsonl") if "loss" in r]


def test_sigterm_saves_exits_75_and_resume_reproduces_the_curve(tmp_path):
    r = recipe(tmp_path)
    full = run_vsuite("pretrain", r, "--out", str(tmp_path / "a"))
    assert full.code == 0, full.stderr
    assert full.stdout.strip().endswith("step-00000012")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "VSUITE_TRAIN_STEP_DELAY": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "vsuite", "pretrain", r, "--out", str(tmp_path / "b")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "b" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and any(row.get("step", 0) >= 3 for row in read(metrics)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err and "--resume auto" in err
    saved = [s for s, _ in C.list_checkpoints(tmp_path / "b")]
    assert len(saved) == 1 and 3 <= saved[0] < 12, saved

    resumed = run_vsuite("pretrain", r, "--out", str(tmp_path / "b"), "--resume", "auto")
    assert resumed.code == 0, resumed.stderr
    assert f"resuming from {tmp_path / 'b' / 'checkpoints' / f'step-{saved[0]:08d}'}" in resumed.stderr
    assert curve(tmp_path / "b") == curve(tmp_path / "a")  # losses, lrs and grad norms equal bit for bit
    again = run_vsuite("pretrain", r, "--out", str(tmp_path / "b"))
    assert again.code == 0 and "nothing to do" in again.stderr
    fresh = run_vsuite("pretrain", r, "--out", str(tmp_path / "b"), "--resume", "none")
    assert_one_line_error(fresh, 2)  # never silently start over in a run folder that has checkpoints
    assert "--resume auto" in fresh.stderr


def test_torchrun_two_processes_agree(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vsuite", "pretrain", recipe(tmp_path), "--out", str(out), "train.steps=6"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 ranks agree on the final weights" in proc.stderr
    assert "2 process(es) on cpu" in proc.stderr
    folder = out / "checkpoints" / "step-00000006"
    record = C.check_checkpoint(folder)
    assert {"train_state/__0_0.distcp", "train_state/__1_0.distcp"} <= set(record["files"])  # both ranks wrote
    assert record["world_size"] == 2
    rows = read(out / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 7))
    assert rows[0]["tokens"] == 2 * 4 * 32  # two ranks' batches per update


def test_divergence_exits_7_and_keeps_the_last_good_checkpoint(tmp_path):
    res = run_vsuite("pretrain", recipe(tmp_path), "--out", str(tmp_path / "run"), "train.lr=1e30",
                     "train.warmup_steps=0", "train.save_every=1", "train.clip_grad=0.0")
    assert_one_line_error(res, 7)
    assert "diverged at step 2" in res.stderr and "step-00000001" in res.stderr
    assert [s for s, _ in C.list_checkpoints(tmp_path / "run")] == [1]
    C.check_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000001")
