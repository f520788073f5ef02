"""Processes and devices: torchrun (or raw SLURM) environment, process group, DDP / FSDP2 wrapping.

Notable:
  - Rank and world size come from torchrun's RANK / LOCAL_RANK / WORLD_SIZE; without them, from a
    SLURM step with several tasks (SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS, MASTER_ADDR = first
    host of SLURM_JOB_NODELIST, MASTER_PORT from the env or derived from the job id). torchrun wins.
  - Backend: nccl on CUDA, gloo on the CPU. One process and no launcher: no process group at all.
  - FSDP2 (`fully_shard`) shards every block named in the model's `_no_split_modules` (the Hugging Face
    convention), else every child of each nn.ModuleList, then the root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device
from ..errors import RecipeError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    launcher: str = "none"  # none | torchrun | slurm

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _first_host(nodelist: str) -> str:
    """'gpu[017-020,031],cpu1' -> 'gpu017' (the same host `scontrol show hostnames` prints first)."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        return "127.0.0.1"
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def read_env(environ: dict | None = None) -> tuple[int, int, int, str]:
    """(rank, local_rank, world_size, launcher) from torchrun's variables, else SLURM's, else one process."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]), "torchrun"
    ntasks = int(env.get("SLURM_NTASKS", "1") or 1)
    if ntasks > 1 and "SLURM_PROCID" in env:
        return int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)), ntasks, "slurm"
    return 0, 0, 1, "none"


def _export_slurm_rendezvous(rank: int, local_rank: int, world: int) -> None:
    os.environ.setdefault("MASTER_ADDR", _first_host(os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1")))
    os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 40000))
    os.environ["RANK"], os.environ["LOCAL_RANK"], os.environ["WORLD_SIZE"] = str(rank), str(local_rank), str(world)


def init(device: str = "auto") -> DistEnv:
    """Start (once) the process group the launcher asked for; return this process's place in it."""
    rank, local_rank, world, launcher = read_env()
    dev = resolve_device(device, local_rank, flag="train.device")  # auto/cuda: cuda:LOCAL_RANK
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        if launcher == "slurm":
            _export_slurm_rendezvous(rank, local_rank, world)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
    return DistEnv(rank, local_rank, world, dev, launcher)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_mean(env: DistEnv, value: torch.Tensor) -> torch.Tensor:
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= env.world_size
    return value


def any_true(env: DistEnv, flag: bool) -> bool:
    """True on every rank when it is true on any (keeps the ranks in step for stop decisions)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device(env))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(env: DistEnv, obj):
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_float(env: DistEnv, value: float) -> list[float]:
    if not env.distributed:
        return [value]
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device(env))
    out = [torch.zeros_like(t) for _ in range(env.world_size)]
    dist.all_gather(out, t)
    return [float(o.item()) for o in out]


def _comm_device(env: DistEnv) -> torch.device:
    return env.device if env.device.type == "cuda" else torch.device("cpu")


def resolve_parallel(parallel: str, env: DistEnv) -> str:
    if parallel == "auto":
        return "ddp" if env.distributed else "none"
    if parallel in ("ddp", "fsdp") and not env.distributed:
        return "none"  # one process: nothing to share
    return parallel


def _shard_units(model: nn.Module) -> list[nn.Module]:
    names = set(getattr(model, "_no_split_modules", None) or [])
    units = [m for m in model.modules() if type(m).__name__ in names]
    if not units:
        units = [child for m in model.modules() if isinstance(m, nn.ModuleList) for child in m]
    return units


def wrap(model: nn.Module, env: DistEnv, mode: str) -> nn.Module:
    """The model as the training loop calls it: as it is, in DDP, or sharded with FSDP2."""
    if mode == "none":
        return model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.device.index] if env.device.type == "cuda" else None
        return DDP(model, device_ids=ids)
    if mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        for unit in _shard_units(model):
            fully_shard(unit, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    raise RecipeError(f"train.parallel={mode!r} is not one of auto, none, ddp, fsdp")


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def no_sync(model: nn.Module, mode: str, sync: bool):
    """Context for one micro-batch: skip the gradient all-reduce unless `sync` (the last micro-batch)."""
    import contextlib

    if mode == "ddp" and not sync:
        return model.no_sync()
    if mode == "fsdp":
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()
