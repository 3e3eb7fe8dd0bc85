"""One writer at a time: the exclusive lock every writer of a feature cache, run folder or index takes.

A writer takes an exclusive, non-blocking ``flock`` on ``FOLDER/.cirlab.lock`` before it touches the
folder and keeps it until its work there is done; the file names the holder (pid, host, command, start
time), so that a second writer is refused at once with one line naming the folder and the holder,
instead of mixing its files with the first one's. The kernel drops a ``flock`` when its process ends,
however it ends (SIGKILL included), so a lock file left behind by a killed process never blocks anyone:
only a live holder does. A writer that finishes deletes the file while it still holds the lock; a
writer that locked a file just deleted this way sees that the path no longer leads to it and starts
again, so two writers never hold two different files of one folder.

While the lock is held, every temporary file of an atomic write (:func:`cirlab.io.atomic_path`) in the
folder belongs to a writer that was killed: :func:`remove_leftover_temporaries` deletes them.

Within one process the lock is re-entrant: taking it again for a folder the process already holds
counts one more hold, and the lock is given up when the last hold is released (a run's set-up and its
training loop may each take it). Under ``torchrun`` only the main process takes it, and every process
learns whether it got it (:func:`lock_folder` with the run's context), so that all of them stop together.

POSIX only (Linux, macOS): Windows has no ``flock`` and is not supported. On a network file system the
lock is only as good as the file system's ``flock`` (NFS: see its ``local_lock`` mount option); where
``flock`` is unsupported the writer goes on unlocked, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from cirlab.errors import CirlabError, ConfigError

if TYPE_CHECKING:
    from cirlab.distributed import DistributedContext

LOCK_FILE = ".cirlab.lock"

#: Names of :func:`cirlab.io.atomic_path`'s temporaries: ``.<destination name>.<8 random characters>.tmp``.
TEMPORARY_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")

#: Attempts at locking a lock file that other writers keep deleting (each finished writer deletes it once).
ATTEMPTS = 100

LOGGER = logging.getLogger("cirlab")


class FolderLockedError(CirlabError):
    """Another live process holds the folder's writer lock."""


@dataclass
class _Held:
    """The open, locked lock file of a folder this process holds, and how many holds are taken."""

    handle: IO[str] | None  # None where the file system cannot lock (unlocked, with a warning)
    path: Path
    holds: int


#: The folders this process holds. A flock belongs to an open file, not to a process: opening the same
#: file again here would be refused by our own lock, so re-entrance needs to know what is held.
_HELD: dict[Path, _Held] = {}


class FolderLock:
    """One hold of a folder's writer lock; :meth:`release` (or leaving a ``with`` block) gives it back."""

    def __init__(self, key: Path | None) -> None:
        self._key = key  # None: a hold that locks nothing (a non-main process of a distributed run)
        self.released = key is None

    def release(self) -> None:
        """Give this hold back; the lock goes with the process's last hold of it (idempotent)."""
        if self.released:
            return
        self.released = True
        held = _HELD[self._key]
        held.holds -= 1
        if held.holds == 0:
            del _HELD[self._key]
            if held.handle is not None:
                held.path.unlink(missing_ok=True)  # while still locked: see the module notes
                fcntl.flock(held.handle.fileno(), fcntl.LOCK_UN)
                held.handle.close()

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_folder(folder: str | Path, ctx: DistributedContext | None = None) -> FolderLock:
    """Take ``folder``'s writer lock (creating the folder), or raise :class:`FolderLockedError` naming the holder.

    With the context of a distributed run, only the main process takes it and every process raises when
    it could not be taken (every process must call this); the other processes get a hold that locks nothing.
    """
    if ctx is None or not ctx.is_distributed:
        return _acquire(Path(folder))
    lock, error = FolderLock(None), None
    if ctx.is_main:
        try:
            lock = _acquire(Path(folder))
        except CirlabError as exc:
            error = exc
    error = ctx.broadcast(error)
    if error is not None:
        raise error
    return lock


def holder(folder: str | Path) -> str:
    """Who holds ``folder``'s lock as its lock file says (``pid 123 on host h, `cirlab ...```); empty if unknown."""
    try:
        info = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
        return f"pid {int(info['pid'])} on host {info['host']}, `{info['command']}`"
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        return ""


def remove_leftover_temporaries(folder: str | Path) -> int:
    """Delete the atomic-write temporaries in ``folder`` (not below it); return how many there were.

    Call it only while holding the folder's lock: then no live writer owns any of them.
    """
    try:
        entries = list(Path(folder).iterdir())
    except FileNotFoundError:
        return 0
    removed = 0
    for entry in entries:
        if TEMPORARY_NAME.match(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _acquire(folder: Path) -> FolderLock:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = folder.resolve()
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    if key in _HELD:
        _HELD[key].holds += 1
        return FolderLock(key)
    path = folder / LOCK_FILE
    for _ in range(ATTEMPTS):
        try:
            handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666), "r+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the lock file ({exc.strerror or exc}); choose a folder you "
                              f"can write to") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise FolderLockedError(f"{folder}: another cirlab process ({holder(folder) or 'details unknown'}) "
                                        f"is writing here; wait for it or choose another folder") from None
            LOGGER.warning("%s: the file system cannot lock files (%s); make sure that no other cirlab process "
                           "writes to this folder at the same time", folder, exc.strerror or exc)
            _HELD[key] = _Held(None, path, 1)
            return FolderLock(key)
        if _same_file(handle, path):
            handle.seek(0)
            handle.truncate(0)
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                                     "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
            handle.flush()
            _HELD[key] = _Held(handle, path, 1)
            return FolderLock(key)
        handle.close()  # its holder deleted it on release after we opened it: lock the current file
    raise FolderLockedError(f"{folder}: the lock file {LOCK_FILE} keeps being replaced; other cirlab processes "
                            f"are writing here; wait for them or choose another folder")


def _same_file(handle: IO[str], path: Path) -> bool:
    """Whether ``path`` still leads to the open file ``handle``."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)


def _command() -> str:
    """This process's command line, short: ``cirlab extract --data ...`` rather than a full interpreter path."""
    argv = list(sys.argv) or ["python"]
    program = Path(argv[0]).name
    if program == "__main__.py":  # python -m cirlab
        program = Path(argv[0]).parent.name
    command = shlex.join([program, *argv[1:]])
    return command if len(command) <= 200 else command[:197] + "..."
