"""Content hashes of artefact files: recorded when a file is written, verified when it is loaded.

Every artefact cirlab writes records, in the JSON that describes it, one record per file::

    "files": {"images.npy": {"sha256": "<hex>", "bytes": 190000128}, ...}

(the feature cache and the gallery index in their ``manifest.json``, a combiner in ``combiner.json``,
a training checkpoint folder in ``checksums.json``). A loader passes the record to
:func:`verify_file` or :func:`read_verified`, which refuse a file whose size or hash differs with a
one-line :class:`DamagedFileError` naming the file, so that flipped or truncated bytes are never
used. A file with no record (an artefact written before records existed) is loaded unverified.

sha256 is used, read in 1 MiB chunks: on CPUs with SHA extensions (most x86-64 since 2017 and ARMv8)
OpenSSL hashes 1 to 1.8 GB/s per core (measured on a shared 2-core VM), twice blake2b's rate on the
same machine, so verifying costs about as much as reading the file from a fast disk once.

Large files can be verified once and remembered (``remember=True``): after a successful check a
stamp in the folder's :data:`STAMP_FILE` records the hash and the file's device, inode, size,
modification and change times; a later load whose file still has exactly that status and whose
record names the same hash skips the reading. Any write to the file, or its replacement, changes
the status and so brings the full check back. File systems stamp times with a coarse clock (a few
milliseconds; a second or more on some), so a write right after the previous one may leave the
times unchanged: a file changed less than :data:`SETTLE_NS` before the check is therefore not
stamped (as git treats "racily clean" files), and any later write necessarily moves its change
time. What a stamp cannot catch is damage that leaves the status untouched (bits decaying on the
medium under an unchanged file system entry); remove :data:`STAMP_FILE` to have every file verified
again. A stamp that is unreadable, or names another hash, is ignored; one that cannot be written (a
read-only folder) means every load verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cirlab.errors import CacheMismatchError
from cirlab.io import atomic_write_json

#: The hash function, and the key of its hex digest in a file record.
ALGORITHM = "sha256"
#: Bytes read per step when hashing a file.
CHUNK_BYTES = 1 << 20
#: Stamps of files verified once (see the module notes), one per folder.
STAMP_FILE = ".verified.json"
#: A file whose last change is more recent than this (ns) when it is verified is not stamped (see the notes).
SETTLE_NS = 2_000_000_000
_STAMP_FORMAT = 1


class DamagedFileError(CacheMismatchError):
    """An artefact file's content differs from the hash recorded when it was written."""


def file_record(path: str | Path) -> dict[str, Any]:
    """``{"sha256": hex, "bytes": size}`` of the file at ``path``, to store in its artefact's JSON."""
    path = Path(path)
    return {ALGORITHM: _hash_file(path), "bytes": path.stat().st_size}


def checked_records(files: Any, recorded_in: Path) -> dict[str, dict[str, Any]]:
    """The file records of an artefact's JSON (its ``files`` value), checked for shape.

    ``None`` (an artefact written before records existed) gives ``{}``; anything that is not a
    mapping of names to ``{"sha256": 64 hex digits, "bytes": size}`` is an error naming ``recorded_in``.
    """
    if files is None:
        return {}
    if not isinstance(files, Mapping):
        raise DamagedFileError(f"{recorded_in}: 'files' is not a mapping of file names to content hashes")
    for name, record in files.items():
        if not _valid_record(record):
            raise DamagedFileError(f"{recorded_in}: malformed content hash record for {name!r} "
                                   f"(expected {{\"{ALGORITHM}\": hex digest, \"bytes\": size}})")
    return dict(files)


def verify_file(path: str | Path, record: Mapping[str, Any] | None, *, recorded_in: str | Path, advice: str,
                remember: bool = False) -> None:
    """Refuse the file at ``path`` unless its size and hash are those of ``record`` (``None``: not checked).

    ``recorded_in`` (the JSON holding the record) and ``advice`` (what to do) complete the message.
    ``remember``: skip the hashing when a stamp shows this exact file was verified before, and stamp
    it after a successful check (see the module notes).
    """
    if record is None:
        return
    path = Path(path)
    before = os.stat(path)
    _check_size(path, before.st_size, record, recorded_in, advice)
    if remember and _stamped(path, before, record):
        return
    _check_digest(path, _hash_file(path), record, recorded_in, advice)
    if remember:
        _stamp_if_unchanged(path, before, record)


def read_verified(path: str | Path, record: Mapping[str, Any] | None, *, recorded_in: str | Path,
                  advice: str) -> bytes:
    """The bytes of the file at ``path``, read once and checked against ``record`` (``None``: not checked).

    For files that are parsed whole anyway (JSON, a pickled trainer state): hashing what was read
    costs no second read.
    """
    path = Path(path)
    data = path.read_bytes()
    if record is not None:
        _check_size(path, len(data), record, recorded_in, advice)
        _check_digest(path, hashlib.new(ALGORITHM, data).hexdigest(), record, recorded_in, advice)
    return data


# ------------------------------------------------------------------------------ internals
def _hash_file(path: Path) -> str:
    digest = hashlib.new(ALGORITHM)
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(view):
            digest.update(view[:count])
    return digest.hexdigest()


def _valid_record(record: Any) -> bool:
    if not isinstance(record, Mapping):
        return False
    digest, size = record.get(ALGORITHM), record.get("bytes")
    return (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
            and isinstance(size, int) and not isinstance(size, bool) and size >= 0)


def _check_size(path: Path, size: int, record: Mapping[str, Any], recorded_in: str | Path, advice: str) -> None:
    if size != record["bytes"]:
        raise DamagedFileError(f"{path}: damaged or truncated ({size} bytes, {Path(recorded_in).name} records "
                               f"{record['bytes']}); {advice}")


def _check_digest(path: Path, digest: str, record: Mapping[str, Any], recorded_in: str | Path, advice: str) -> None:
    if digest != record[ALGORITHM]:
        raise DamagedFileError(f"{path}: damaged (its {ALGORITHM} differs from the one {Path(recorded_in).name} "
                               f"records: the file changed after it was written); {advice}")


def _status(stat: os.stat_result) -> list[int]:
    """What identifies one state of a file: device, inode, size, modification and change times (ns)."""
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _read_stamps(folder: Path) -> dict[str, Any]:
    try:
        stamps = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(stamps, dict) or stamps.get("format_version") != _STAMP_FORMAT:
        return {}
    files = stamps.get("files")
    return files if isinstance(files, dict) else {}


def _stamped(path: Path, stat: os.stat_result, record: Mapping[str, Any]) -> bool:
    stamp = _read_stamps(path.parent).get(path.name)
    return (isinstance(stamp, dict) and stamp.get(ALGORITHM) == record[ALGORITHM]
            and stamp.get("status") == _status(stat))


def _now_ns() -> int:
    """The wall clock, which file systems stamp change times with."""
    return time.time_ns()


def _stamp_if_unchanged(path: Path, before: os.stat_result, record: Mapping[str, Any]) -> None:
    """Stamp ``path`` as verified, unless it changed while it was hashed or too recently; best effort."""
    try:
        after = os.stat(path)
        if _status(after) != _status(before) or _now_ns() - after.st_ctime_ns < SETTLE_NS:
            return
        stamps = _read_stamps(path.parent)
        stamps[path.name] = {ALGORITHM: record[ALGORITHM], "status": _status(after)}
        atomic_write_json(path.parent / STAMP_FILE, {"format_version": _STAMP_FORMAT, "files": stamps})
    except OSError:
        pass  # a read-only folder: every load verifies
