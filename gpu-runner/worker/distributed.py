"""Data-parallel training over several processes started by torchrun.

The runner starts `python -m torch.distributed.run --nproc_per_node N -m worker run`
when it offers more than one GPU (or, for CPU machines and tests, more than one
process) and the job allows it. torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; each
process trains on its share of every optimizer step's examples, and the LoRA
gradients are summed across processes before the optimizer step.

Because the loss of a step is the sum over its labelled tokens divided by the step's
total labelled tokens (counted over all processes), any split of the step's examples
gives the same summed gradient as one process would compute. So N processes train
the same adapter as one, up to floating-point summation order, and a checkpoint from
either kind of run resumes in the other.

Only rank 0 prints events and writes files. Every collective call happens at the
same point in every process: the step boundary (cancellation vote, gradient sum,
loss and token sums), so a SIGTERM that reaches the processes at slightly different
times still stops them all after the same step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence, TypeVar

import torch

from .runtime import DeviceChoice

T = TypeVar("T")

# A process that waits longer than this in a collective call gives up (the others died).
_COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class ProcessGroup:
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's part of `items`: every world_size-th item from its rank."""
        return list(items[self.rank :: self.world_size])

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Add up the gradients of `parameters` across processes, in one flat call."""
        if not self.distributed:
            return
        grads = [parameter.grad if parameter.grad is not None else torch.zeros_like(parameter) for parameter in parameters]
        flat = torch.cat([grad.reshape(-1) for grad in grads])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        offset = 0
        for parameter, grad in zip(parameters, grads):
            count = grad.numel()
            parameter.grad = flat[offset : offset + count].view_as(grad).to(grad.dtype)
            offset += count

    def sum_values(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Sum a few numbers (loss sums, token counts) across processes."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True in every process when `flag` is true in any one of them."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


SINGLE_PROCESS = ProcessGroup(rank=0, world_size=1)


def world_from_environment() -> tuple[int, int, int]:
    """Return (rank, local rank, world size) as torchrun sets them; (0, 0, 1) otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world_size


def join(device_choice: DeviceChoice) -> tuple[ProcessGroup, DeviceChoice]:
    """Join the torchrun process group and pick this process's device.

    On CUDA each process takes the GPU of its local rank and talks over NCCL; on the
    CPU the processes talk over gloo. Returns SINGLE_PROCESS outside torchrun.
    """
    rank, local_rank, world_size = world_from_environment()
    if world_size <= 1:
        return SINGLE_PROCESS, device_choice
    if device_choice.device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
        torch.cuda.set_device(local_rank)
        device_choice = DeviceChoice(torch.device("cuda", local_rank), device_choice.dtype)
        backend = "nccl"
    else:
        backend = "gloo"
    torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=_COLLECTIVE_TIMEOUT)
    return ProcessGroup(rank=rank, world_size=world_size), device_choice
