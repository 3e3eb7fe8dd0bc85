"""Atomic file writes.

Checkpoints, caches and indexes are written to a temporary file in the destination folder, flushed
and fsynced, then renamed over the destination. A reader therefore sees the old file or the new one,
never half of one, even when the writer is killed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it over ``destination`` on success.

    The caller writes the file at the yielded path by any means (``np.save``, ``safetensors``,
    ``faiss.write_index``). On an exception the temporary file is removed and ``destination`` is
    left untouched.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file private (0600); give it the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, destination)
        fsync_dir(destination.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(destination: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``destination`` atomically through a binary file handle given to ``write``."""
    with atomic_path(destination) as tmp, open(tmp, "wb") as handle:
        write(handle)


def atomic_write_bytes(destination: str | Path, data: bytes) -> None:
    """Write ``data`` to ``destination`` atomically."""
    atomic_write(destination, lambda handle: handle.write(data))


def atomic_write_text(destination: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``destination`` atomically."""
    atomic_write_bytes(destination, text.encode("utf-8"))


def atomic_write_json(destination: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``destination`` atomically."""
    atomic_write_text(destination, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _current_umask() -> int:
    """The process umask (reading it requires setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable on file systems that need the directory synced (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
