"""Running train.py and infer.py as several processes under torchrun, PyTorch's own launcher.

    torchrun --nproc_per_node=4 train.py ...      # one process per GPU on this machine

torchrun starts one copy of the script per process and tells each its place through the
environment (RANK, LOCAL_RANK, WORLD_SIZE). Every helper below is a no-op in an ordinary
single process, so the scripts call them unconditionally and read the same either way.
Rank 0 is the "main" process: it alone prints, writes files and saves models.
"""

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from common.device import pick_device
from common.errors import UserError
from common.files import atomic_write


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the ones torchrun started."""

    rank: int = 0  # 0 .. world_size - 1, across every machine
    local_rank: int = 0  # 0 .. processes on this machine - 1: which GPU this process drives
    world_size: int = 1

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def is_distributed(self):
        return self.world_size > 1


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: its device, its arithmetic precision (fp32, bf16, fp16) and
    its place among torchrun's processes."""

    device: torch.device
    precision: str
    processes: Processes = field(default_factory=Processes)


def launched_processes():
    """This process's place, from the variables torchrun sets (a single process without them)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    return Processes(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)


def start_processes(device_setting, backend=None, timeout_minutes=30):
    """Join torchrun's process group when launched by it; return (Processes, this process's device).

    On CUDA each process drives the GPU numbered by its LOCAL_RANK and the processes talk over
    NCCL; on the CPU they use gloo. backend="gloo" suits a stage that only exchanges small
    Python objects (infer.py), whatever the device.
    """
    processes = launched_processes()
    if not processes.is_distributed:
        return processes, pick_device(device_setting)
    device = pick_device(device_setting)
    if device.type == "mps":
        raise UserError("torchrun runs several processes on CUDA GPUs or on the CPU; MPS has no multi-process "
                        "support. Pass --device cpu, or run without torchrun.")
    if device.type == "cuda":
        if processes.local_rank >= torch.cuda.device_count():
            raise UserError(f"process {processes.local_rank} on this machine has no GPU of its own: "
                            f"--nproc_per_node must be at most {torch.cuda.device_count()} here")
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"),
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return processes, device


def stop_processes():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def process_rank():
    """This process's rank under torchrun; 0 otherwise."""
    return dist.get_rank() if _active() else 0


def _collective_device():
    """NCCL moves tensors between GPUs only; gloo between CPUs."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier():
    if _active():
        dist.barrier()


def all_agree(flag):
    """True only if `flag` is true in every process: each training step is taken by all of them or
    by none, as DistributedDataParallel requires (a process that skipped alone would hang the rest)."""
    if not _active():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def sum_across_processes(numbers):
    """Element-wise sums of a list of numbers over every process."""
    if not _active():
        return list(numbers)
    values = torch.tensor(numbers, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(values)
    return values.tolist()


def gather_objects(value):
    """Every process's `value`, in rank order, in every process."""
    if not _active():
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def gather_rows(array):
    """The rows of a NumPy array (or None) from every process, stacked in rank order; None when no
    process had any."""
    parts = [part for part in gather_objects(array) if part is not None and len(part)]
    return np.concatenate(parts) if parts else None


def from_main(value):
    """Rank 0's `value`, sent to every process (each passes its own, which only rank 0's replaces)."""
    if not _active():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0, device=_collective_device())
    return holder[0]


def copy_weights_from_main(model, buffers_only=False):
    """Make every process's parameters and buffers (or only its buffers) equal to rank 0's."""
    if _active():
        for tensor in model.buffers() if buffers_only else model.state_dict().values():
            dist.broadcast(tensor, src=0)


def contiguous_shard(items, processes):
    """This process's share of a list: consecutive items, the shares differing in size by at most
    one, so that concatenating them in rank order gives back the list in its order."""
    count, world_size = len(items), processes.world_size
    return items[count * processes.rank // world_size: count * (processes.rank + 1) // world_size]


def part_path(path, processes):
    """Where one process writes its share of an output file that rank 0 then assembles."""
    path = Path(path)
    return path.with_name(f".{path.name}.part{processes.rank}of{processes.world_size}")


def join_parts(path, processes, header=""):
    """Rank 0 writes `path` as `header` followed by every process's part in rank order, then
    deletes the parts; streamed, so the parts never need to fit in memory together."""
    barrier()  # every part is complete
    if processes.is_main:
        parts = [part_path(path, Processes(rank, 0, processes.world_size)) for rank in range(processes.world_size)]
        with atomic_write(path, "wb") as joined:
            joined.write(header.encode())
            for part in parts:
                with open(part, "rb") as piece:
                    while chunk := piece.read(1 << 20):
                        joined.write(chunk)
        for part in parts:
            part.unlink()
    barrier()  # nobody moves on (or exits) before the file is in place




def learning_rate_for(base_rate, world_size, scaling):
    """The learning rate for `world_size` processes that each take --batch-size images per step.

    The global batch is world_size times larger, so each step averages over more images and
    can take a larger step. Adam-family optimizers, like AdamW here, follow the square-root rule
    (Malladi et al., "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", 2022);
    the linear rule (Goyal et al., 2017) is the one for SGD.
    """
    factor = {"sqrt": world_size ** 0.5, "linear": float(world_size), "none": 1.0}[scaling]
    return base_rate * factor


