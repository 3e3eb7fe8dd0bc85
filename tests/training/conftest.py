"""Trainer tests run their tiny models on one intra-op thread (faster on a small, shared machine)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Use one torch thread for the test, then restore the previous setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
