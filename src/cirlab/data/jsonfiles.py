"""Reading and validating the data set's JSON files with one-line errors.

Every problem is reported as a :class:`~cirlab.errors.DataError` naming the file, and where it
helps the position (line and column of a syntax error, index of a bad entry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cirlab.errors import DataError

#: Longest caption accepted, in characters. FashionIQ's longest is 103; CLIP's tokenizer keeps 77 tokens
#: (a few hundred characters) anyway, but would first tokenise all of a runaway caption (100 MB took
#: minutes and gigabytes). A longer caption is an error naming the file and the triplet.
MAX_CAPTION_CHARS = 1_000

#: Largest caption file read, in bytes (FashionIQ's largest is 1.2 MB); a larger one is refused from
#: its size, before it is read or parsed.
MAX_CAPTION_FILE_BYTES = 64 * 2**20


def read_json(path: Path, *, max_bytes: int | None = None, unique_keys: bool = False) -> Any:
    """Parse a UTF-8 JSON file, turning every failure into a one-line :class:`DataError`.

    A file over ``max_bytes`` is refused from its size, before it is read. With ``unique_keys`` an
    object that repeats a key is an error (JSON decoding would otherwise keep the last value silently).
    """
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            raise DataError(path, f"file is {size:,} bytes, over the limit of {max_bytes:,} bytes for this file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, expected a JSON file") from None
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    if not text.strip():
        raise DataError(path, "file is empty")
    try:
        return json.loads(text, object_pairs_hook=_refuse_repeated_keys if unique_keys else None)
    except _RepeatedKey as exc:
        raise DataError(path, f"key {exc.key!r} appears twice in one object") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise DataError(path, "JSON nested too deeply to read (lists or objects inside each other "
                              "thousands of levels deep)") from None


class _RepeatedKey(ValueError):
    """A JSON object repeats ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook: the object, unless a key repeats."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _RepeatedKey(key)
        result[key] = value
    return result


def check_image_id(path: Path, where: str, value: Any) -> str:
    """Validate one image id: a non-empty string that is a plain file name stem."""
    if not isinstance(value, str):
        raise DataError(path, f"{where}: image id must be a string, got {type(value).__name__}")
    if not value or value.strip() != value:
        raise DataError(path, f"{where}: image id {value!r} is empty or has surrounding spaces")
    if "/" in value or "\\" in value or value in {".", ".."} or "\x00" in value:
        raise DataError(path, f"{where}: image id {value!r} is not a plain name")
    return value


def read_split_file(path: Path) -> list[str]:
    """Read ``split.<category>.<split>.json``: a list of unique image ids."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of image ids, got {type(data).__name__}")
    ids = [check_image_id(path, f"entry {i}", value) for i, value in enumerate(data)]
    seen: dict[str, int] = {}
    for i, image_id in enumerate(ids):
        if image_id in seen:
            raise DataError(path, f"entry {i}: duplicate image id {image_id!r} (first at entry {seen[image_id]})")
        seen[image_id] = i
    return ids


def read_caption_file(path: Path, *, require_target: bool) -> list[dict[str, Any]]:
    """Read ``cap.<category>.<split>.json``: a list of ``{candidate, target, captions}`` objects.

    ``captions`` must hold exactly two strings of at most :data:`MAX_CAPTION_CHARS` characters; an
    empty string is allowed (the real files have some). ``target`` may be absent only when
    ``require_target`` is false (the test split). A file over :data:`MAX_CAPTION_FILE_BYTES` is
    refused unread.
    """
    data = read_json(path, max_bytes=MAX_CAPTION_FILE_BYTES)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of triplets, got {type(data).__name__}")
    entries = []
    for i, entry in enumerate(data):
        where = f"entry {i}"
        if not isinstance(entry, dict):
            raise DataError(path, f"{where}: expected an object, got {type(entry).__name__}")
        if "candidate" not in entry:
            raise DataError(path, f"{where}: missing key 'candidate'")
        if "captions" not in entry:
            raise DataError(path, f"{where}: missing key 'captions'")
        if require_target and "target" not in entry:
            raise DataError(path, f"{where}: missing key 'target'")
        check_image_id(path, f"{where} 'candidate'", entry["candidate"])
        if "target" in entry:
            check_image_id(path, f"{where} 'target'", entry["target"])
        captions = entry["captions"]
        if not isinstance(captions, list) or len(captions) != 2 or not all(isinstance(c, str) for c in captions):
            raise DataError(path, f"{where}: 'captions' must be a list of two strings")
        for number, caption in enumerate(captions, start=1):
            if len(caption) > MAX_CAPTION_CHARS:
                raise DataError(path, f"{where}: caption {number} is {len(caption):,} characters long, over the "
                                      f"limit of {MAX_CAPTION_CHARS:,} (the text encoder reads 77 tokens)")
        entries.append(entry)
    return entries


def read_tags_file(path: Path) -> dict[str, list[str]]:
    """Read ``asin2attr.<category>.<split>.json``: image id → list of attribute strings.

    Values may be lists of strings or lists of lists of strings (the original FashionIQ tag files
    group words per attribute); both are flattened to a list of strings.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object mapping image ids to tags, got {type(data).__name__}")
    tags: dict[str, list[str]] = {}
    for image_id, value in data.items():
        check_image_id(path, f"key {image_id!r}", image_id)
        if not isinstance(value, list):
            raise DataError(path, f"tags of {image_id!r} must be a list")
        flat: list[str] = []
        for item in value:
            if isinstance(item, str):
                flat.append(item)
            elif isinstance(item, list) and all(isinstance(word, str) for word in item):
                flat.extend(item)
            else:
                raise DataError(path, f"tags of {image_id!r} must be strings or lists of strings")
        tags[image_id] = flat
    return tags
