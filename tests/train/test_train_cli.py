"""The trainer through `vsuite pretrain` in subprocesses: preemption + exact resume, torchrun, divergence."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from helpers import assert_one_line_error, run_vsuite

from vsuite.train import checkpoint as C
from vsuite.train import signals as S
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
    marker = json.loads((tmp_path / "b" / "PREEMPTED").read_text())  # plain process: marker and exit 75
    assert marker["step"] == saved[0] and marker["exit_code"] == 75 and marker["reason"] == "SIGTERM"
    assert marker["checkpoint"].endswith(f"step-{saved[0]:08d}")

    resumed = run_vsuite("pretrain", r, "--out", str(tmp_path / "b"), "--resume", "auto")
    assert resumed.code == 0, resumed.stderr
    assert f"resuming from {tmp_path / 'b' / 'checkpoints' / f'step-{saved[0]:08d}'}" in resumed.stderr
    assert curve(tmp_path / "b") == curve(tmp_path / "a")  # losses, lrs and grad norms equal bit for bit
    assert not (tmp_path / "b" / "PREEMPTED").exists()  # a new start clears it: no second requeue
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


def start_slow(r: str, out: Path, *extra: str, delay: str = "0.2") -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "1000", "VSUITE_TRAIN_STEP_DELAY": delay}
    return subprocess.Popen([sys.executable, "-m", "vsuite", "pretrain", r, "--out", str(out), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(proc, metrics: Path, step: int, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        rows = read(metrics) if metrics.exists() else []
        done = max((row.get("step", 0) for row in rows), default=0)
        if done >= step:
            return done
        time.sleep(0.02)
    raise AssertionError(f"the run ended or stalled before step {step}: {proc.poll()}")


def test_ctrl_c_finishes_the_step_saves_and_says_how_to_resume(tmp_path):
    r, out = recipe(tmp_path), tmp_path / "run"
    proc = start_slow(r, out)
    wait_for_step(proc, out / "metrics.jsonl", 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    saved = [s for s, _ in C.list_checkpoints(out)]
    assert len(saved) == 1 and 2 <= saved[0] < 12, saved
    final = [line for line in err.splitlines() if "interrupted" in line]
    assert final == [f"Error: interrupted at step {saved[0]}; saved {out / 'checkpoints' / f'step-{saved[0]:08d}'}; "
                     f"resume with: vsuite pretrain {r} --out {out} --resume auto"], err
    assert not (out / "PREEMPTED").exists()  # Ctrl-C is not a preemption: nothing to requeue
    resumed = run_vsuite("pretrain", r, "--out", str(out), "--resume", "auto", "train.steps=" + str(saved[0] + 1))
    assert resumed.code == 0 and f"(step {saved[0]})" in resumed.stderr  # the printed command works


def test_second_ctrl_c_aborts_without_saving(tmp_path):
    r, out = recipe(tmp_path), tmp_path / "run"
    proc = start_slow(r, out, "train.save_every=2", "train.keep_last=0", delay="1.5")
    wait_for_step(proc, out / "metrics.jsonl", 3)  # the update is done; the process sleeps before its save
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Ctrl-C again to stop at once" in err
    line = next(line for line in err.splitlines() if "aborted" in line)
    step = int(line.split("aborted at step ")[1].split()[0])
    saved = [s for s, _ in C.list_checkpoints(out)]
    assert saved and all(s % 2 == 0 for s in saved) and saved[-1] < step, (saved, line)  # no stop checkpoint
    assert f"the last complete checkpoint is {out / 'checkpoints' / f'step-{saved[-1]:08d}'}" in line


TORCHRUN_STUBS = {
    # the job script's srun: drop its own options, run the command (one node)
    "srun": '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n',
    "torchrun": f'#!/bin/bash\nexec {sys.executable} -m torch.distributed.run "$@"\n',
    "scontrol": '#!/bin/bash\nif [ "$1" = show ]; then echo localhost; else echo "$@" >> "$STUB/scontrol.log"; fi\n',
}


def test_sigusr1_under_torchrun_reads_as_a_clean_preemption_and_requeues(tmp_path):
    """The real job script, torchrun with 2 CPU workers (gloo), SIGUSR1 to the batch shell."""
    for name, text in TORCHRUN_STUBS.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "STUB": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "NO_COLOR": "1", "COLUMNS": "1000", "OMP_NUM_THREADS": "1", "VSUITE_TRAIN_STEP_DELAY": "0.3",
           "VSUITE_OUT": str(out),
           "GPUS_PER_NODE": "2", "RDZV_PORT": str(port), "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost",
           "SLURM_JOB_NUM_NODES": "1"}
    script = ROOT / "examples" / "slurm" / "pretrain.sbatch"
    proc = subprocess.Popen(["bash", str(script), recipe(tmp_path)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_step(proc, out / "metrics.jsonl", 2, timeout=300)
    proc.send_signal(signal.SIGUSR1)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    for crash in ("Traceback", "ChildFailedError", "SignalException", "exit 1", "Error:"):
        assert crash not in log, (crash, log[-3000:])
    marker = json.loads((out / S.MARKER_FILE).read_text())
    assert marker["exit_code"] == 0 and marker["reason"].startswith("SIGUSR1")
    saved = [s for s, _ in C.list_checkpoints(out)]
    assert saved == [marker["step"]] and 2 <= marker["step"] < 12
    C.check_checkpoint(out / "checkpoints" / f"step-{marker['step']:08d}")  # complete, both ranks' state
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    assert not (out / S.STOP_FILE).exists()
    worker = [line for line in log.splitlines() if line.startswith("preempted: stopped by SIGUSR1")]
    job = [line for line in log.splitlines() if "requeueing" in line]
    assert len(worker) == 1 and f"after step {marker['step']}" in worker[0], log[-3000:]  # rank 0 only
    assert len(job) == 1 and "preempted cleanly" in job[0] and f"step-{marker['step']:08d}" in job[0]
