"""Checkpoints: a Hugging Face model folder plus the training state, written atomically.

    out_dir/checkpoints/step-00001000/
      config.json, model.safetensors        the model (model-0000k-of-0000N.safetensors + index above max_shard_size)
      generation_config.json, tokenizer...  whatever save_pretrained and the task's `save_extra` write
      recipe.toml                           the resolved recipe of the run
      trainer_state.json                    step, data position, tokens seen, elapsed time, world size
      train_state/                          torch.distributed.checkpoint (DCP): optimizer state, RNG per rank
      COMPLETE                              marker, written last: JSON with the size of every file above

Notable:
  - Everything is written into checkpoints/.tmp-step-XXXXXXXX and renamed when complete; a folder
    without COMPLETE, or whose files differ from the sizes COMPLETE lists, or whose safetensors
    headers do not match their length, is not a checkpoint (`--resume auto` skips it with a warning).
  - Rank 0 writes the model (with FSDP the full state dict is gathered to rank 0, on the CPU, first);
    every rank writes its share of the DCP training state.
  - The folder itself loads with `AutoModelForCausalLM.from_pretrained(step_dir)` (extra files are ignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..console import log, warn
from ..errors import ModelNotFoundError
from . import distributed as D

MARKER = "COMPLETE"
STATE_FILE = "trainer_state.json"
DCP_DIR = "train_state"
PREFIX = "step-"


class CheckpointError(Exception):
    """A folder that is not a complete checkpoint; str() says why."""


def step_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def checkpoints_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every step-* folder, oldest first (complete or not)."""
    root = checkpoints_dir(out_dir)
    found = []
    for p in root.glob(f"{PREFIX}*") if root.is_dir() else []:
        suffix = p.name[len(PREFIX):]
        if p.is_dir() and suffix.isdigit():
            found.append((int(suffix), p))
    return sorted(found)


# ----------------------------------------------------------------------------- validation


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path.name} is truncated (no header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise CheckpointError(f"{path.name} is truncated (header says {n} bytes, file has {size})")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise CheckpointError(f"{path.name} has a corrupt header") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise CheckpointError(f"{path.name} is truncated or padded ({size} bytes, header describes {8 + n + end})")


def check_checkpoint(folder: Path) -> dict:
    """The marker's record of a complete checkpoint, or CheckpointError saying what is wrong."""
    folder = Path(folder)
    marker = folder / MARKER
    if not marker.is_file():
        raise CheckpointError(f"no {MARKER} marker (the save did not finish)")
    try:
        record = json.loads(marker.read_text())
        files = record["files"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"unreadable {MARKER} marker") from None
    for rel, size in files.items():
        path = folder / rel
        if not path.is_file():
            raise CheckpointError(f"{rel} is missing")
        if path.stat().st_size != size:
            raise CheckpointError(f"{rel} has {path.stat().st_size} bytes, {size} were written")
    for path in folder.glob("*.safetensors"):
        _check_safetensors(path)
    for required in ("config.json", STATE_FILE, f"{DCP_DIR}/.metadata"):
        if required not in files:
            raise CheckpointError(f"{required} is not part of it")
    return record


def newest_complete(out_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run folder; incomplete or corrupt ones are skipped with a warning."""
    for _, folder in reversed(list_checkpoints(out_dir)):
        try:
            check_checkpoint(folder)
            return folder
        except CheckpointError as err:
            warn(f"skipping checkpoint {folder}: {err}")
    return None


def model_or_run_folder(ref: str) -> Path:
    """`--model` of the eval/classify commands: a run folder (no config.json, a checkpoints/ folder) -> its newest
    complete checkpoint; anything else (model folder, Hub id) through vsuite.hub. ModelNotFoundError (exit 4)."""
    from ..hub import resolve_model_dir

    path = Path(ref).expanduser()
    if path.is_dir() and not (path / "config.json").exists() and checkpoints_dir(path).is_dir():
        found = newest_complete(path)
        if found is None:
            raise ModelNotFoundError(f"{path} is a run folder without a complete checkpoint")
        return found
    return resolve_model_dir(ref)


def resolve_resume(resume: str, out_dir: Path) -> Path | None:
    """--resume auto | none | PATH (a step folder, or a run folder whose newest checkpoint is taken)."""
    if resume == "none":
        return None
    if resume == "auto":
        return newest_complete(out_dir)
    path = Path(resume).expanduser()
    if (path / MARKER).exists() or path.name.startswith(PREFIX):
        try:
            check_checkpoint(path)
        except CheckpointError as err:
            raise ModelNotFoundError(f"--resume {resume}: not a complete checkpoint ({err})") from None
        return path
    if checkpoints_dir(path).is_dir():
        found = newest_complete(path)
        if found is None:
            raise ModelNotFoundError(f"--resume {resume}: no complete checkpoint under {checkpoints_dir(path)}")
        return found
    raise ModelNotFoundError(f"--resume {resume}: no checkpoint there (give a checkpoints/step-XXXXXXXX folder, "
                             "a run folder, auto or none)")


# ----------------------------------------------------------------------------- saving


def _full_model_state(model: nn.Module, mode: str) -> dict | None:
    """The unsharded state dict on rank 0 (None elsewhere); a collective under FSDP."""
    if mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return sd if (not dist.is_initialized() or dist.get_rank() == 0) else None
    return D.unwrap(model).state_dict()


@contextlib.contextmanager
def quiet():
    """No tqdm bars from transformers and no DCP 'single process' warnings in the training log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:  # pragma: no cover
            yield
            return
        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()


def _write_model(module: nn.Module, state: dict, folder: Path, max_shard_size: str) -> None:
    if hasattr(module, "save_pretrained"):
        with quiet():
            module.save_pretrained(folder, state_dict=state, max_shard_size=max_shard_size)
    else:
        from huggingface_hub import save_torch_state_dict

        save_torch_state_dict({k: v.detach().cpu().contiguous() for k, v in state.items()}, folder,
                              max_shard_size=max_shard_size)


def _rng_state(env: D.DistEnv) -> dict:
    state = {f"cpu_rank{env.rank}": torch.get_rng_state()}
    if env.device.type == "cuda":
        state[f"cuda_rank{env.rank}"] = torch.cuda.get_rng_state(env.device)
    return state


def _fsync_tree(folder: Path) -> dict[str, int]:
    """fsync every file (readable by the umask's rule: some writers create 0o600 files); name -> size."""
    sizes = {}
    mode = folder.stat().st_mode & 0o666
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            path.chmod(mode)
            with path.open("rb") as f:
                os.fsync(f.fileno())
            sizes[path.relative_to(folder).as_posix()] = path.stat().st_size
    return sizes


def save(env: D.DistEnv, out_dir: Path, step: int, model: nn.Module, mode: str, optimizer, trainer_state: dict,
         recipe=None, save_extra: Callable[[Path], None] | None = None, max_shard_size: str = "5GB") -> Path:
    """Write checkpoints/step-XXXXXXXX (a collective: every rank calls it)."""
    from torch.distributed.checkpoint import save as dcp_save
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    root = checkpoints_dir(out_dir)
    final, tmp = root / step_name(step), root / f".tmp-{step_name(step)}"
    if env.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    D.barrier(env)
    state = _full_model_state(model, mode)
    if env.is_main:
        _write_model(D.unwrap(model), state, tmp, max_shard_size)
        if save_extra is not None:
            save_extra(tmp)
        if recipe is not None:
            recipe.write(tmp / "recipe.toml")
        (tmp / STATE_FILE).write_text(json.dumps({**trainer_state, "step": step}, indent=2) + "\n")
    del state
    train_state = {"optim": get_optimizer_state_dict(model, optimizer), "rng": _rng_state(env)}
    with quiet():
        dcp_save(train_state, checkpoint_id=tmp / DCP_DIR, no_dist=not dist.is_initialized())
    D.barrier(env)
    if env.is_main:
        files = _fsync_tree(tmp)
        record = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "world_size": env.world_size,
                  "files": files}
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n")
        _fsync_tree(tmp)
        if final.exists():  # saving the step we resumed from again: replace it only once the new one is complete
            old = root / f".old-{step_name(step)}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    D.barrier(env)
    return final


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prune(out_dir: Path, keep_last: int, protect: Path | None = None) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints (and stale temp folders); rank 0 only."""
    removed = []
    root = checkpoints_dir(out_dir)
    for stale in list(root.glob(".tmp-*")) + list(root.glob(".old-*")):
        if protect is None or stale.resolve() != Path(protect).resolve():
            shutil.rmtree(stale, ignore_errors=True)
    if keep_last <= 0:
        return removed
    complete = [p for _, p in list_checkpoints(out_dir) if (p / MARKER).exists()]
    for folder in complete[:-keep_last]:
        if protect is not None and folder.resolve() == Path(protect).resolve():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


# ----------------------------------------------------------------------------- loading


def load_model_weights(module: nn.Module, folder: Path) -> None:
    """Copy a checkpoint's weights into `module` (unwrapped, before DDP/FSDP), bit for bit."""
    dtype = next(module.parameters()).dtype
    if hasattr(type(module), "from_pretrained") and (folder / "config.json").is_file():
        with quiet():
            loaded, info = type(module).from_pretrained(folder, dtype=dtype, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if problems:
            raise ModelNotFoundError(f"checkpoint {folder} does not fit the model: "
                                     + "; ".join(f"{k} {sorted(map(str, v))[:3]}" for k, v in problems.items()))
        state = loaded.state_dict()
        del loaded
    else:
        from ..hub import load_state_dict

        state = load_state_dict(folder)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes differ: another model config than the checkpoint's
        raise ModelNotFoundError(f"checkpoint {folder} does not fit the model: "
                                 f"{str(err).splitlines()[-1].strip()[:200]} (was [model] changed?)") from None
    tied = _tied_names(module)
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ModelNotFoundError(f"checkpoint {folder} does not fit the model: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")


def _tied_names(module: nn.Module) -> set[str]:
    seen, tied = {}, set()
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.add(name)
        seen.setdefault(id(p), name)
    return tied


def read_trainer_state(folder: Path) -> dict:
    return json.loads((Path(folder) / STATE_FILE).read_text())


def load_train_state(env: D.DistEnv, folder: Path, model: nn.Module, optimizer) -> None:
    """Optimizer state and this rank's RNG from the DCP part (a collective: every rank calls it)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint import load as dcp_load
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    path = Path(folder) / DCP_DIR
    saved_keys = set(FileSystemReader(path).read_metadata().state_dict_metadata)
    rng = {k: v.clone() for k, v in _rng_state(env).items() if f"rng.{k}" in saved_keys}
    state = {"optim": get_optimizer_state_dict(model, optimizer), "rng": rng}
    with quiet():
        dcp_load(state, checkpoint_id=path, no_dist=not dist.is_initialized())
    set_optimizer_state_dict(model, optimizer, state["optim"])
    if f"cpu_rank{env.rank}" in state["rng"]:
        torch.set_rng_state(state["rng"][f"cpu_rank{env.rank}"])
    else:
        warn(f"checkpoint {folder} has no RNG state for rank {env.rank} (different world size); random "
             "streams (dropout) will differ from an uninterrupted run")
    if f"cuda_rank{env.rank}" in state["rng"]:
        torch.cuda.set_rng_state(state["rng"][f"cuda_rank{env.rank}"], env.device)


def describe(folder: Path) -> str:
    try:
        return str(Path(folder).relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def log_resume(folder: Path, step: int) -> None:
    log(f"resuming from {describe(folder)} (step {step})")
