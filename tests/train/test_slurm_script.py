"""examples/slurm/pretrain.sbatch with stub srun/scontrol: SIGUSR1 becomes a stop request file, the
PREEMPTED marker (or exit 75) makes the job requeue with one line, a normal end does not."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "slurm" / "pretrain.sbatch"

# Plays the workers: waits for the stop request, then does what vsuite does under torchrun (marker,
# exit 0) or without it (exit 75, MODE=plain). Never signalled itself.
SRUN = """#!/bin/bash
echo "$@" > "$STUB/srun.args"
exec python3 -c '
import json, os, sys, time
out, mode = sys.argv[1], os.environ.get("MODE", "torchrun")
open(os.environ["STUB"] + "/ready", "w").write("ready")
deadline = time.monotonic() + float(os.environ["RUN_SECONDS"])
while time.monotonic() < deadline:
    if os.path.exists(out + "/STOP"):
        os.remove(out + "/STOP")
        if mode == "crash":
            sys.exit(1)
        json.dump({"step": 7, "checkpoint": out + "/checkpoints/step-00000007"}, open(out + "/PREEMPTED", "w"))
        sys.exit(0 if mode == "torchrun" else 75)
    time.sleep(0.05)
' runs/tnl-385m
"""
SCONTROL = """#!/bin/bash
if [ "$1" = show ]; then echo node-a; echo node-b; else echo "$@" >> "$STUB/scontrol.log"; fi
"""


def start(tmp_path, run_seconds, mode="torchrun"):
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "STUB": str(tmp_path), "MODE": mode,
           "RUN_SECONDS": str(run_seconds), "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node-[a-b]",
           "SLURM_JOB_NUM_NODES": "2"}
    env.pop("VSUITE_OUT", None)
    return subprocess.Popen(["bash", str(SCRIPT), "pretrain/tnl-385m", "data.path=/data"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_after_start(tmp_path, proc):
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    return proc.communicate(timeout=30)


@pytest.mark.parametrize("mode", ["torchrun", "plain"])
def test_usr1_writes_a_stop_request_and_the_marker_requeues(tmp_path, mode):
    proc = start(tmp_path, 30, mode)
    out, err = stop_after_start(tmp_path, proc)
    assert proc.returncode == 0, err
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    requeue_lines = [line for line in err.splitlines() if "requeueing" in line]
    assert len(requeue_lines) == 1 and "preempted cleanly" in requeue_lines[0], err
    assert "runs/tnl-385m/checkpoints/step-00000007" in requeue_lines[0]
    assert not (tmp_path / "runs" / "tnl-385m" / "STOP").exists()  # the workers consumed it
    args = (tmp_path / "srun.args").read_text()
    for piece in ("torchrun", "--nnodes 2", "--rdzv_backend c10d", "--rdzv_endpoint node-a:29500",
                  "SIGUSR1", "-m vsuite pretrain pretrain/tnl-385m data.path=/data", "--out runs/tnl-385m",
                  "--resume auto"):
        assert piece in args, (piece, args)


def test_stop_without_a_new_checkpoint_still_requeues(tmp_path):
    proc = start(tmp_path, 30, "crash")
    out, err = stop_after_start(tmp_path, proc)
    assert proc.returncode == 0, err
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    assert "no new checkpoint" in err


def test_normal_end_is_not_requeued_and_stale_files_are_cleared(tmp_path):
    run = tmp_path / "runs" / "tnl-385m"
    run.mkdir(parents=True)
    (run / "PREEMPTED").write_text(json.dumps({"step": 1}))  # left by a job killed before it could act
    (run / "STOP").write_text("SIGUSR1 job 4241")
    proc = start(tmp_path, 0)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not (tmp_path / "scontrol.log").exists()
    assert not (run / "PREEMPTED").exists() and not (run / "STOP").exists()
    assert "finished with exit code 0" in err
