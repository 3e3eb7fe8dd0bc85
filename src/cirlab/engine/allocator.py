"""Freed memory kept for reuse while a model trains on the CPU.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh ``mmap``
and returns it with ``munmap`` when it is freed. A training step on the CPU allocates many such blocks
and frees them before the next step: the weight gradients (100 MiB for each 5120 x 5120 layer of
CLIP4Cir's combiner), and under bf16 autocast the bf16 copies of the weights and of their gradients.
Each fresh block costs one page fault per 4 KiB page and the kernel's zeroing of it, the first time it
is written: a 100 MiB fp32 cast took 48 ms into fresh memory and 6 ms into reused memory, and the
faults were a fifth of a bf16 step of that combiner. For the duration of :func:`reuse_freed_memory`
every block comes from the heap and freed memory stays there (``M_MMAP_MAX`` 0, a high
``M_TRIM_THRESHOLD``), so from the second step on a step's buffers reuse the previous step's pages.

The allocator's settings are the process's; on leaving, large blocks are mmapped again, the heap's free
memory is returned to the system, and the thresholds are those glibc's own dynamic rule settles on in a
process that handles large arrays (32 MiB for mmap, twice that for trimming). Elsewhere than glibc, and
on GPUs (whose memory torch caches itself), it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Iterator
from typing import Any

import torch

LOGGER = logging.getLogger("cirlab.engine")

# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

#: glibc's default maximum number of mmapped blocks, and the mmap threshold its dynamic rule reaches (64-bit).
DEFAULT_MMAP_MAX = 65536
DYNAMIC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
#: Freed memory at the top of the heap kept while training (mallopt takes an int).
TRAINING_TRIM_THRESHOLD = 2**31 - 1


def glibc() -> Any | None:
    """The C library when it is glibc (has ``mallopt`` and ``malloc_trim``), else ``None``."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not all(hasattr(libc, f) for f in ("mallopt", "malloc_trim", "gnu_get_libc_version")):
        return None
    return libc


@contextlib.contextmanager
def reuse_freed_memory(device: torch.device) -> Iterator[bool]:
    """Keep freed memory in the heap for reuse while the block runs on ``device`` (a CPU); yields whether
    the allocator was changed."""
    libc = glibc() if device.type == "cpu" else None
    if libc is None:
        yield False
        return
    applied = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRAINING_TRIM_THRESHOLD) == 1
    if not applied:
        LOGGER.debug("mallopt refused the training settings; large blocks stay mmapped")
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_MMAP_THRESHOLD, DYNAMIC_MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * DYNAMIC_MMAP_THRESHOLD_MAX)
        libc.malloc_trim(0)
