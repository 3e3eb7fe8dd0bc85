"""Peak extra memory of a block of work."""

from __future__ import annotations

import pytest
import torch

from cirlab.bench.memory import PeakMemory


def test_a_large_temporary_allocation_is_seen_after_it_is_freed() -> None:
    peak = PeakMemory(torch.device("cpu"))
    if not peak.method.startswith("rss"):
        pytest.skip(f"peak memory is {peak.method}")
    with peak:
        block = torch.ones(32 * 2**20 // 4)  # 32 MiB, every page touched
        del block
    assert 30 * 2**20 <= peak.extra_bytes < 200 * 2**20


def test_the_method_is_described() -> None:
    assert PeakMemory(torch.device("cpu")).method
