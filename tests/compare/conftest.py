"""Comparison tests run their tiny models on one intra-op thread (faster on a small, shared machine)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every comparison test runs on one torch thread (:func:`tests.conftest.one_torch_thread`)."""
