"""Freed memory kept for reuse while training on the CPU: the allocator settings and their restoration."""

from __future__ import annotations

import pytest
import torch

import cirlab.engine.allocator as allocator


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_training_on_the_cpu_keeps_freed_memory_and_restores_glibcs_settings_after(monkeypatch) -> None:
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "glibc", lambda: libc)
    with allocator.reuse_freed_memory(torch.device("cpu")) as applied:
        assert applied
        assert libc.calls == [("mallopt", allocator.M_MMAP_MAX, 0),
                              ("mallopt", allocator.M_TRIM_THRESHOLD, allocator.TRAINING_TRIM_THRESHOLD)]
        libc.calls.clear()
    assert libc.calls == [("mallopt", allocator.M_MMAP_MAX, allocator.DEFAULT_MMAP_MAX),
                          ("mallopt", allocator.M_MMAP_THRESHOLD, 32 * 1024 * 1024),
                          ("mallopt", allocator.M_TRIM_THRESHOLD, 64 * 1024 * 1024),
                          ("malloc_trim", 0)]


def test_the_settings_are_restored_when_training_fails(monkeypatch) -> None:
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "glibc", lambda: libc)
    with pytest.raises(RuntimeError), allocator.reuse_freed_memory(torch.device("cpu")):
        raise RuntimeError("diverged")
    assert libc.calls[-1] == ("malloc_trim", 0)


def test_nothing_changes_on_a_gpu_or_without_glibc(monkeypatch) -> None:
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "glibc", lambda: libc)
    with allocator.reuse_freed_memory(torch.device("cuda")) as applied:
        assert not applied
    monkeypatch.setattr(allocator, "glibc", lambda: None)
    with allocator.reuse_freed_memory(torch.device("cpu")) as applied:
        assert not applied
    assert libc.calls == []


def test_the_real_allocator_accepts_the_settings() -> None:
    if allocator.glibc() is None:
        pytest.skip("not glibc")
    with allocator.reuse_freed_memory(torch.device("cpu")) as applied:
        assert applied
        assert float(torch.ones(64, 1024, 1024).sum()) == 64 * 1024 * 1024  # a 256 MiB block from the heap
