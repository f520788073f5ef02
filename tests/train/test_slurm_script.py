"""examples/slurm/pretrain.sbatch with stub srun/scontrol: the signal is forwarded, then the job requeued."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "slurm" / "pretrain.sbatch"

SRUN = """#!/bin/bash
echo "$@" > "$STUB/srun.args"
exec python3 -c '
import signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: sys.exit(75))  # vsuite: save, then exit 75
open(sys.argv[1], "w").write("ready")
time.sleep(float(sys.argv[2]))
' "$STUB/ready" "$RUN_SECONDS"
"""
SCONTROL = """#!/bin/bash
if [ "$1" = show ]; then echo node-a; echo node-b; else echo "$@" >> "$STUB/scontrol.log"; fi
"""


def start(tmp_path, run_seconds):
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "STUB": str(tmp_path),
           "RUN_SECONDS": str(run_seconds), "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node-[a-b]",
           "SLURM_JOB_NUM_NODES": "2"}
    return subprocess.Popen(["bash", str(SCRIPT), "pretrain/tnl-385m", "data.path=/data"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(not SCRIPT.exists(), reason="no sbatch script")
def test_usr1_is_forwarded_and_the_job_requeued(tmp_path):
    proc = start(tmp_path, 30)
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    args = (tmp_path / "srun.args").read_text()
    for piece in ("torchrun", "--nnodes 2", "--rdzv_backend c10d", "--rdzv_endpoint node-a:29500",
                  "SIGUSR1", "-m vsuite pretrain pretrain/tnl-385m data.path=/data", "--out runs/tnl-385m",
                  "--resume auto"):
        assert piece in args, (piece, args)


def test_normal_end_is_not_requeued(tmp_path):
    proc = start(tmp_path, 0)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not (tmp_path / "scontrol.log").exists()
