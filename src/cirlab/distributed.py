"""Everything about running as one of several ``torchrun`` processes, in one place.

Joining and leaving the process group, where this process stands (:class:`DistributedContext`,
:func:`is_main_process`), and the reductions every distributed command needs: the mean or sum of
values over processes, every process's object, the main process's object, and every process's
features with their gradients (:meth:`DistributedContext.gather_with_grad`, the one feature gather of
the contrastive losses). Each helper is a no-op in a single process, so every command runs the same
with or without ``torchrun``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


def is_main_process() -> bool:
    """Whether this process is rank 0 of its ``torchrun`` launch (always true without torchrun).

    Read from the environment, so it answers before (or without) a process group, as the
    command line needs when it decides which process prints.
    """
    return int(os.environ.get("RANK", "0") or 0) == 0


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs, writes files and shows progress bars."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (no-op when not distributed)."""
        if self.is_distributed:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order (every process must call this)."""
        if not self.is_distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj`` on every process (every process must call this)."""
        if not self.is_distributed:
            return obj
        shared = [obj]
        dist.broadcast_object_list(shared, src=0)
        return shared[0]

    def mean(self, values: Mapping[str, float], device: torch.device | None = None) -> dict[str, float]:
        """The mean of each named value over every process (one all-reduce for all of them)."""
        if not self.is_distributed:
            return dict(values)
        keys = sorted(values)
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                              device=communication_device(device))
        dist.all_reduce(tensor)
        return dict(zip(keys, (tensor / self.world_size).tolist()))

    def mean_tensor(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over every process (the tensor itself in a single process)."""
        if not self.is_distributed:
            return value
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def gather_with_grad(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's ``tensor`` ([n, ...], the same shape on each), concatenated in rank order along the
        first dimension ([world_size * n, ...]), with gradients (``tensor`` itself in a single process).

        open_clip's ``--gather-with-grad``: a contrastive loss scores this process's rows (its *local loss*,
        ``--local-loss``) against the rows of every process. In the backward pass this process's rows receive
        the sum of the gradients every process's loss sends them, so once DistributedDataParallel has averaged
        the parameters' gradients, N processes with n rows each have the gradient of one process that
        computes the mean of all N local losses over the N * n rows: the same loss, up to float rounding.
        """
        if not self.is_distributed:
            return tensor
        return _GatherWithGrad.apply(tensor)

    def sum(self, values: Mapping[str, float], *, take_max: frozenset[str] = frozenset()) -> dict[str, float]:
        """The sum of each named value over every process; keys in ``take_max`` (states, not counters) take
        the largest value instead. A key missing on a process counts as 0 there."""
        parts = self.gather(dict(values))
        keys = sorted({key for part in parts for key in part})
        return {key: (max if key in take_max else sum)(part.get(key, 0.0) for part in parts) for key in keys}


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward hands each process the summed gradient of its own rows.

    Written out rather than taken from ``torch.distributed.nn.functional.all_gather`` (deprecated, and
    emulated with all-to-all under gloo): the backward is one all-reduce, which every backend supports.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.rows = slice(dist.get_rank() * tensor.shape[0], (dist.get_rank() + 1) * tensor.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # the incoming gradient is not ours to change in place
        dist.all_reduce(grad)
        return grad[ctx.rows]


def communication_device(device: torch.device | None) -> torch.device:
    """Where tensors of a collective must live: the GPU under NCCL, the CPU under gloo."""
    if device is not None and dist.is_initialized() and dist.get_backend() == "nccl":
        return device
    return torch.device("cpu")


def init_distributed(device: torch.device | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Uses NCCL on CUDA and gloo on CPU. Without ``WORLD_SIZE`` > 1 this returns a single-process
    context and starts nothing, so every command works the same with or without torchrun.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = device is not None and device.type == "cuda"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)


def shutdown_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_session(device: torch.device | None = None) -> Iterator[DistributedContext]:
    """``with distributed_session() as ctx:`` joins torchrun's group and leaves it afterwards, unless the
    caller had already joined one (then the caller leaves it)."""
    owns_group = not (dist.is_available() and dist.is_initialized())
    ctx = init_distributed(device)
    try:
        yield ctx
    finally:
        if owns_group:
            shutdown_distributed()


def wrap_ddp(module: torch.nn.Module, ctx: DistributedContext, device: torch.device) -> torch.nn.Module:
    """``module`` inside DistributedDataParallel when several processes train it, else ``module`` itself
    (also when it has nothing to train)."""
    if not ctx.is_distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
