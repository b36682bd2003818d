"""torchrun support: process-group set-up, DDP / FSDP wrapping, and full (unsharded) state dicts.

Launched by torchrun, RANK / WORLD_SIZE / LOCAL_RANK are in the environment; otherwise this is one process.
Backend: NCCL on CUDA, gloo on CPU (how the tests run 2 processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..config import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> tuple[DistInfo, torch.device]:
    """Initialise the process group under torchrun; pick this process's device."""
    info = DistInfo(int(os.environ.get("RANK", 0)), world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and info.enabled:
        device = f"cuda:{info.local_rank}"
    dev = parse_device(device)
    if dev.type == "cuda":
        if dev.index is None:  # set_device needs an index: plain "cuda" means the current device
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return info, dev


def refuse_torchrun(command: str, why: str) -> None:
    """Under torchrun, a one-line refusal for what runs in one process only."""
    if world_size() > 1:
        raise ValueError(f"{command} {why}; launch it without torchrun")


def world_size() -> int:
    """The process count torchrun set (1 without torchrun), known before the process group exists."""
    return int(os.environ.get("WORLD_SIZE", 1))


def check_divisible(n: int, what: str, world: int | None = None) -> None:
    """A global batch of n splits evenly over the processes (local_part), else a one-line ConfigError."""
    world = world_size() if world is None else world
    if n % world:
        raise ConfigError(f"{what} {n} must be divisible by the {world} processes")


def local_part(batch, info: DistInfo):
    """This process's rows of a global batch (every process draws the same one): rank r of W takes rows
    [r·n/W, (r+1)·n/W) — equal slices when W divides n (check_divisible). batch: a tensor or a tuple of them."""
    if not info.enabled:
        return batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(local_part(t, info) for t in batch)
    n = len(batch)
    return batch[info.rank * n // info.world:(info.rank + 1) * n // info.world]


def parse_device(name: str) -> torch.device:
    """auto | cpu | cuda | cuda:N -> torch.device; ValueError (one line) for anything else or a missing GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device, fsdp: bool) -> torch.nn.Module:
    """DDP (gradients all-reduced) or FSDP2 `fully_shard` (parameters sharded per block, then the root)."""
    if not info.enabled:
        if fsdp:
            raise ValueError("--fsdp needs several processes: launch with torchrun --nproc_per_node N")
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def all_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """Average a scalar over processes."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / info.world


def any_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process when it is True on any (decisions such as stopping early must agree)."""
    if not info.enabled:
        return bool(flag)
    t = torch.tensor([int(bool(flag))], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def any_signal(signum: int | None, info: DistInfo, device: torch.device) -> int | None:
    """The stop signal any process received (the largest number), so that every process stops at one step."""
    if not info.enabled:
        return signum
    t = torch.tensor([signum or 0], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item()) or None


def gather_objects(obj, info: DistInfo) -> list:
    """obj from every rank (a list indexed by rank); [obj] in one process."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def model_state(model: torch.nn.Module, raw: torch.nn.Module, fsdp: bool) -> dict[str, torch.Tensor]:
    """Full state dict of the user's model (FSDP shards gathered to CPU)."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in raw.state_dict().items()}


def optim_state(model: torch.nn.Module, optimizer, fsdp: bool) -> dict:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return optimizer.state_dict()


def load_optim_state(model: torch.nn.Module, optimizer, state: dict, fsdp: bool) -> None:
    """Into a sharded (fsdp) or plain optimizer; a state saved by FSDP (keyed by parameter name, not index) also
    loads into a plain one, so an FSDP run resumes in one process."""
    by_name = any(isinstance(k, str) for k in state.get("state", {}))
    if fsdp or by_name:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=fsdp))
    else:
        optimizer.load_state_dict(state)
