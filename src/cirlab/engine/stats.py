"""Step statistics that stay on the device until they are read back, and durations timed on the device.

Turning a step's loss, gradient norm and statistics into Python floats as they are made (``.item()``,
``float(tensor)``) makes the host wait for the device at every step: on a GPU the queue of launched
kernels drains and the next step cannot be queued while the current one runs. The engine keeps each
step's values as they come instead (:class:`StepRecords`: tensors, floats or device-timed durations)
and reads every pending step back in one transfer per device every ``sync_every`` steps and at the end
of an epoch; the values read back are those a per-step ``float()`` would have given.

Durations are taken the same way (:class:`Stopwatch`): CUDA events on a GPU, read back with the
statistics, and the host clock elsewhere, where every operation has finished when it returns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cirlab.distributed import DistributedContext, communication_device


@dataclass(frozen=True)
class Elapsed:
    """Seconds between two CUDA events, known once the device has passed the second one."""

    start: Any  # torch.cuda.Event
    end: Any

    def seconds(self) -> float:
        """Wait for the end event (the caller is at a read-back point anyway) and measure."""
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1000.0


class Stopwatch:
    """Times spans of device work without waiting for the device.

    ``mark = watch.start()`` ... ``watch.stop(mark)`` gives the span's seconds: a float on the CPU (whose
    operations are synchronous), an :class:`Elapsed` between two CUDA events on a GPU.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self) -> Any:
        """A mark at the current point of the device's work."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def stop(self, mark: Any) -> float | Elapsed:
        """The time from ``mark`` to the current point of the device's work."""
        if self.cuda:
            return Elapsed(mark, self.start())
        return time.perf_counter() - mark


#: What a step statistic may be before it is read back (``None``: not reported by the step, read as NaN).
Value = Tensor | float | int | Elapsed | None


class StepRecords:
    """Statistics of the steps since the last read-back, kept as the steps produced them.

    :meth:`add` stores a step's host facts (``epoch``, ``step``, ``lr``: already plain numbers) and its
    values without touching the device beyond queueing a reduction to a scalar; :meth:`read` turns every
    pending step's values into floats (a tensor into the mean of its elements, NaN when it has none),
    averages them over processes and empties the buffer. Every process must read at the same steps.
    """

    def __init__(self, ctx: DistributedContext, device: torch.device) -> None:
        self.ctx, self.device = ctx, device
        self._pending: list[tuple[dict[str, Any], dict[str, Value]]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, facts: Mapping[str, Any], values: Mapping[str, Value]) -> None:
        """Keep one step's ``facts`` and ``values`` until the next :meth:`read`."""
        self._pending.append((dict(facts), {key: _reduced(value) for key, value in values.items()}))

    def read(self) -> list[tuple[dict[str, Any], dict[str, float]]]:
        """Every pending step as ``(facts, values as floats)``, in step order; one transfer per device."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        columns = list(dict.fromkeys(key for _, values in pending for key in values))
        table = [[math.nan] * len(columns) for _ in pending]
        on_device: dict[torch.device, list[tuple[int, int, Tensor]]] = {}
        spans: list[tuple[int, int, Elapsed]] = []
        for row, (_, values) in enumerate(pending):
            for column, key in enumerate(columns):
                value = values.get(key)
                if isinstance(value, Tensor):
                    on_device.setdefault(value.device, []).append((row, column, value))
                elif isinstance(value, Elapsed):
                    spans.append((row, column, value))
                elif value is not None:
                    table[row][column] = value
        for group in on_device.values():  # one transfer per device: the only wait for it
            read = torch.stack([value for _, _, value in group]).to("cpu", torch.float64).tolist()
            for (row, column, _), value in zip(group, read):
                table[row][column] = value
        for row, column, span in spans:  # after the transfers: the device is past every event already
            table[row][column] = span.seconds()
        if self.ctx.is_distributed:
            averaged = self.ctx.mean_tensor(torch.tensor(table, dtype=torch.float64,
                                                         device=communication_device(self.device)))
            table = averaged.cpu().tolist()
        return [(facts, {key: table[row][column] for column, key in enumerate(columns) if key in values})
                for row, (facts, values) in enumerate(pending)]


def _reduced(value: Any) -> Value:
    """A statistic as it is kept: a tensor reduced to its float32 mean on its device (queued, not waited
    for), a number as a float, anything else (a missing statistic) as ``None``."""
    if isinstance(value, Tensor):
        value = value.detach()
        return value.float().mean() if value.numel() else None
    if isinstance(value, Elapsed):
        return value
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    return None
