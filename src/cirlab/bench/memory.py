"""Peak extra memory of a block of work, measured the way the device allows.

- CUDA: the caching allocator's peak (``torch.cuda.max_memory_allocated``) after a reset, minus what
  was allocated before the block.
- CPU on Linux: the process's resident-set high-water mark. Freed heap memory is first handed back to
  the system (glibc ``malloc_trim``), then the kernel's high-water mark is reset to the current resident
  size (writing ``5`` to ``/proc/self/clear_refs``); after the block, ``VmHWM`` minus the resident size
  before it is the peak extra memory the block touched. It counts pages, so it is what the machine had to
  provide, including allocator slack, and it would include other threads' allocations (the benchmarks
  run none meanwhile).
- Elsewhere: not measurable; :attr:`PeakMemory.method` says so and the peak is NaN.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


class PeakMemory:
    """``with PeakMemory(device) as peak: work()`` then ``peak.extra_bytes`` and ``peak.method``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.extra_bytes = float("nan")
        self.method = _method(device)
        self._before = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
        elif self.method.startswith("rss"):
            _trim_heap()
            CLEAR_REFS.write_text("5")
            self._before = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.extra_bytes = float(torch.cuda.max_memory_allocated(self.device) - self._before)
        elif self.method.startswith("rss"):
            self.extra_bytes = float(max(0, _status_kib("VmHWM") * 1024 - self._before))


def _method(device: torch.device) -> str:
    if device.type == "cuda":
        return "cuda allocator peak (torch.cuda.max_memory_allocated after a reset)"
    if device.type == "cpu" and _rss_supported():
        return "rss high-water mark (VmHWM after malloc_trim and a /proc/self/clear_refs reset)"
    return "unavailable on this platform"


def _rss_supported() -> bool:
    try:
        _status_kib("VmHWM")
        CLEAR_REFS.write_text("5")
    except (OSError, ValueError):
        return False
    return True


def _status_kib(key: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise ValueError(f"{STATUS} has no {key}")


def _trim_heap() -> None:
    """Return freed heap pages to the system (glibc only; elsewhere a no-op)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass
