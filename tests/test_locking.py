"""The writer lock: refused while another process holds it, free once it is released or its holder is killed."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from pathlib import Path

import pytest

import cirlab.locking as locking
from cirlab.locking import LOCK_FILE, FolderLockedError, lock_folder, remove_leftover_temporaries
from tests.reliability.holders import LockHolder, lock_elsewhere


def test_a_second_writer_is_refused_with_one_line_naming_the_holder(tmp_path: Path) -> None:
    with LockHolder(tmp_path / "cache") as holder, pytest.raises(FolderLockedError) as info:
        lock_folder(tmp_path / "cache")
    message = str(info.value)
    assert message == (f"{tmp_path / 'cache'}: another cirlab process (pid {holder.pid} on host "
                       f"{socket.gethostname()}, `-c {tmp_path / 'cache'}`) is writing here; wait for it or choose "
                       f"another folder")


def test_the_lock_is_free_once_released_and_its_file_is_gone(tmp_path: Path) -> None:
    with LockHolder(tmp_path) as holder:
        holder.release()
    assert not (tmp_path / LOCK_FILE).exists()
    with lock_folder(tmp_path):
        info = json.loads((tmp_path / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_lock_file_of_a_killed_holder_does_not_block(tmp_path: Path) -> None:
    with LockHolder(tmp_path) as holder:
        holder.kill()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind, stale
    with lock_folder(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_the_lock_is_re_entrant_within_a_process_and_goes_with_the_last_hold(tmp_path: Path) -> None:
    outer = lock_folder(tmp_path / "run")
    inner = lock_folder(tmp_path / "run")
    inner.release()
    inner.release()  # idempotent: still one hold left
    assert lock_elsewhere(tmp_path / "run").endswith("is writing here; wait for it or choose another folder")
    outer.release()
    assert lock_elsewhere(tmp_path / "run") == "free"


def test_a_lock_file_replaced_while_locking_is_locked_again(tmp_path: Path, monkeypatch) -> None:
    """A holder deletes the file as it releases; a writer that had opened it before locks the new file instead."""
    real_flock, calls = locking.fcntl.flock, []

    def flock(fd: int, operation: int) -> None:
        calls.append(operation)
        if len(calls) == 1:  # another writer releases (deletes) the file we opened, a third one creates it anew
            (tmp_path / LOCK_FILE).unlink()
            (tmp_path / LOCK_FILE).write_text("")
        real_flock(fd, operation)

    monkeypatch.setattr(locking.fcntl, "flock", flock)
    lock = lock_folder(tmp_path)
    held = locking._HELD[tmp_path.resolve()]
    assert len(calls) == 2 and os.fstat(held.handle.fileno()).st_ino == os.stat(tmp_path / LOCK_FILE).st_ino
    lock.release()


def test_a_file_system_without_flock_goes_on_with_a_warning(tmp_path: Path, monkeypatch, caplog) -> None:
    def unsupported(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locking.fcntl, "flock", unsupported)
    with caplog.at_level(logging.WARNING, logger="cirlab"), lock_folder(tmp_path):
        pass
    assert "cannot lock files (No locks available)" in caplog.text


class FakeContext:
    """Two processes' view of one distributed run: ``broadcast`` hands over what the main process sent."""

    is_distributed = True

    def __init__(self, rank: int, sent: list) -> None:
        self.rank, self.sent = rank, sent

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj):
        if self.is_main:
            self.sent.append(obj)
        return self.sent[0]


def test_under_torchrun_only_the_main_process_locks_and_every_process_learns_the_outcome(tmp_path: Path) -> None:
    sent: list = []
    main = lock_folder(tmp_path / "free", FakeContext(0, sent))
    other = lock_folder(tmp_path / "free", FakeContext(1, sent))
    assert sent == [None] and not main.released and other.released
    main.release()
    sent.clear()
    with LockHolder(tmp_path / "held"):
        with pytest.raises(FolderLockedError):
            lock_folder(tmp_path / "held", FakeContext(0, sent))
        with pytest.raises(FolderLockedError, match="another cirlab process"):
            lock_folder(tmp_path / "held", FakeContext(1, sent))


def test_an_unwritable_folder_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(locking.ConfigError, match="cannot create the folder"):
        lock_folder(tmp_path / "file" / "run")


def test_leftover_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    names = [".images.npy.a1b2_c3d.tmp", ".metrics.json.zz9yx8w7.tmp", "images.npy", ".images.npy.short.tmp",
             "notes.tmp", LOCK_FILE]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / ".last.tmp").mkdir()
    assert remove_leftover_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[2:], ".last.tmp"])
    assert remove_leftover_temporaries(tmp_path / "absent") == 0
