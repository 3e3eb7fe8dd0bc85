"""Reading and validating CIRR's JSON files, with one-line errors naming the file and the entry.

``split.rc2.<split>.json`` maps each image name to its path relative to the data set root;
``cap.rc2.<split>.json`` lists the queries. Each query is an object with ``pairid`` (unique in the
file), ``reference``, ``caption`` and, where the split has targets, ``target_hard``; ``target_soft``
(image name → score: 1.0, 0.5, 0.2 or -1.0 in the release) and ``img_set`` (``{"members": [six image
names]}``) are optional. Captions are kept as written, an empty or blank one included (the test split
has one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cirlab.data.jsonfiles import MAX_CAPTION_CHARS, MAX_CAPTION_FILE_BYTES, check_image_id, read_json
from cirlab.data.layout import IMAGE_EXTENSIONS
from cirlab.errors import DataError


@dataclass(frozen=True)
class CirrQuery:
    """One validated entry of a CIRR caption file."""

    query_id: str  # the pairid, as a string (as a submission file's keys)
    reference: str
    target: str | None
    caption: str
    subset: tuple[str, ...]
    soft_targets: tuple[tuple[str, float], ...]


def read_cirr_split_file(path: Path) -> dict[str, str]:
    """Read ``split.rc2.<split>.json``: image name → relative path (``./`` dropped, e.g. ``dev/dev-1-0-img0.png``).

    A path must stay inside the data set root (relative, no ``..``) and name a .jpg, .jpeg or .png file.
    """
    data = read_json(path, unique_keys=True)
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object mapping image names to paths, got {type(data).__name__}")
    paths: dict[str, str] = {}
    for name, value in data.items():
        check_image_id(path, f"key {name!r}", name)
        if not isinstance(value, str):
            raise DataError(path, f"path of {name!r} must be a string, got {type(value).__name__}")
        relative = PurePosixPath(value)
        if (not value or "\\" in value or "\x00" in value or relative.is_absolute()
                or ".." in relative.parts or relative.name in {"", "."}):
            raise DataError(path, f"path of {name!r} ({value!r}) is not a relative path inside the data set folder")
        if relative.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(path, f"path of {name!r} ({value!r}) is not a {', '.join(IMAGE_EXTENSIONS)} file")
        paths[name] = relative.as_posix()
    return paths


def read_cirr_caption_file(path: Path, *, require_target: bool) -> list[CirrQuery]:
    """Read ``cap.rc2.<split>.json`` (see the module notes); ``target_hard`` may be absent only when
    ``require_target`` is false (the test split). A file over the caption-file size limit is refused unread."""
    data = read_json(path, max_bytes=MAX_CAPTION_FILE_BYTES)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of queries, got {type(data).__name__}")
    queries = []
    first_entry: dict[str, int] = {}
    for i, entry in enumerate(data):
        where = f"entry {i}"
        if not isinstance(entry, dict):
            raise DataError(path, f"{where}: expected an object, got {type(entry).__name__}")
        for key in ("pairid", "reference", "caption") + (("target_hard",) if require_target else ()):
            if key not in entry:
                raise DataError(path, f"{where}: missing key {key!r}")
        query_id = _pair_id(path, where, entry["pairid"])
        if query_id in first_entry:
            raise DataError(path, f"{where}: duplicate pairid {query_id} (first at entry {first_entry[query_id]})")
        first_entry[query_id] = i
        reference = check_image_id(path, f"{where} 'reference'", entry["reference"])
        target = check_image_id(path, f"{where} 'target_hard'", entry["target_hard"]) if "target_hard" in entry \
            else None
        caption = entry["caption"]
        if not isinstance(caption, str):
            raise DataError(path, f"{where}: 'caption' must be a string, got {type(caption).__name__}")
        if len(caption) > MAX_CAPTION_CHARS:
            raise DataError(path, f"{where}: caption is {len(caption):,} characters long, over the limit of "
                                  f"{MAX_CAPTION_CHARS:,} (the text encoder reads 77 tokens)")
        queries.append(CirrQuery(query_id=query_id, reference=reference, target=target, caption=caption,
                                 subset=_members(path, where, entry.get("img_set")),
                                 soft_targets=_soft_targets(path, where, entry.get("target_soft"))))
    return queries


def _pair_id(path: Path, where: str, value: Any) -> str:
    """A pairid: a whole number (as the release writes it) or a non-empty string, as a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value and value.strip() == value:
        return value
    raise DataError(path, f"{where}: 'pairid' must be a whole number or a non-empty string, got {value!r}")


def _members(path: Path, where: str, value: Any) -> tuple[str, ...]:
    """``img_set.members`` as a tuple of image names (empty when the entry has no ``img_set``)."""
    if value is None:
        return ()
    if not isinstance(value, dict) or not isinstance(value.get("members"), list):
        raise DataError(path, f"{where}: 'img_set' must be an object with a list 'members'")
    members = tuple(check_image_id(path, f"{where} 'img_set' member", name) for name in value["members"])
    if len(set(members)) != len(members):
        raise DataError(path, f"{where}: 'img_set' lists an image twice")
    return members


def _soft_targets(path: Path, where: str, value: Any) -> tuple[tuple[str, float], ...]:
    """``target_soft`` as ``(image name, score)`` pairs in file order (empty when absent)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise DataError(path, f"{where}: 'target_soft' must be an object mapping image names to scores")
    pairs = []
    for name, score in value.items():
        check_image_id(path, f"{where} 'target_soft' key", name)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataError(path, f"{where}: 'target_soft' score of {name!r} must be a number, got {score!r}")
        pairs.append((name, float(score)))
    return tuple(pairs)
