"""Test-wide settings: offline, CPU only, no progress bars, and the shared real FashionIQ files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CIRLAB_NO_PROGRESS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FASHIONIQ = REPO_ROOT.parent / "shared" / "data" / "fashioniq"


@pytest.fixture(scope="session")
def real_fashioniq() -> Path:
    """The real FashionIQ caption and split files from ``../shared`` (no images); skip when absent."""
    if not (SHARED_FASHIONIQ / "captions").is_dir():
        pytest.skip("../shared/data/fashioniq is not present")
    return SHARED_FASHIONIQ


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the test, then the previous setting: tiny models run faster on one thread
    of a small, shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
