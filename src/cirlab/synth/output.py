"""The output folder's state: empty, a complete or interrupted synth output, or something else.

The generator writes a marker (:data:`PARTIAL_FILE`, holding the configuration) before anything
else and ``synth_meta.json`` after everything else, then removes the marker. So:

* ``synth_meta.json`` present → the output is complete (for the configuration it records);
* only the marker present → a run was interrupted; a rerun with the same configuration redoes it;
* neither, in a non-empty folder → the folder is not ours, and the generator refuses to touch it.
"""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Any

from cirlab.data import cirr_layout
from cirlab.data.layout import IMAGES_DIR, captions_file, split_file, tags_file
from cirlab.data.layout import SPLITS as SPLIT_NAMES
from cirlab.errors import DataError
from cirlab.synth.config import DEFAULT_AMBIGUITY, DEFAULT_FORMAT, GENERATOR_VERSION, SynthConfig

META_FILE = "synth_meta.json"
PARTIAL_FILE = ".synth_partial.json"
GENERATOR_NAME = "cirlab synth"


class OutputState(str, Enum):
    """What :func:`output_state` found."""

    FRESH = "fresh"  # missing or empty folder
    COMPLETE = "complete"  # a finished output of the same configuration
    INCOMPLETE = "incomplete"  # an interrupted or damaged output of the same configuration


def stamp(config: SynthConfig) -> dict[str, Any]:
    """What identifies an output: the generator, its version and the configuration, and beyond the default
    ambiguity the strengths its level stands for (so that an output of a since retuned level is not reused)."""
    record = {"generator": GENERATOR_NAME, "version": GENERATOR_VERSION, "config": config.to_dict()}
    if config.ambiguity != DEFAULT_AMBIGUITY:
        record["ambiguity_level"] = dataclasses.asdict(config.ambiguity_level)
    return record


def output_state(out: Path, config: SynthConfig) -> OutputState:
    """Classify ``out`` for writing ``config``; raise :class:`DataError` when it must not be written."""
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return OutputState.FRESH
    meta, partial = out / META_FILE, out / PARTIAL_FILE
    if meta.exists():
        recorded = _read_stamp(meta)
        _require_same(out, meta, recorded, config)
        return OutputState.COMPLETE if _files_present(out, recorded, config) else OutputState.INCOMPLETE
    if partial.exists():
        _require_same(out, partial, _read_stamp(partial), config)
        return OutputState.INCOMPLETE
    raise DataError(out, f"folder is not empty and holds no '{GENERATOR_NAME}' output ({META_FILE}); "
                         f"choose a new or empty folder")


def _read_stamp(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read this synth output record ({exc}); "
                              "delete the folder or choose another") from None
    if not isinstance(data, dict) or data.get("generator") != GENERATOR_NAME:
        raise DataError(path, f"is not a '{GENERATOR_NAME}' record; choose a new or empty folder")
    return data


def _require_same(out: Path, record: Path, recorded: dict[str, Any], config: SynthConfig) -> None:
    wanted = stamp(config)
    if recorded.get("version") != wanted["version"]:
        raise DataError(out, f"holds a synthetic data set from generator version {recorded.get('version')}, "
                             f"this is version {GENERATOR_VERSION} (see {record.name}); choose a new or empty folder")
    if recorded.get("config") != wanted["config"]:
        defaults = SynthConfig().to_dict() | {"ambiguity": DEFAULT_AMBIGUITY, "format": DEFAULT_FORMAT}  # left out
        old, asked = defaults | (recorded.get("config") or {}), defaults | wanted["config"]
        differing = sorted(k for k in set(old) | set(asked) if old.get(k) != asked.get(k))
        details = ", ".join(f"{k} {old.get(k)!r} (asked {asked.get(k)!r})" for k in differing[:3])
        raise DataError(out, f"holds a synthetic data set made with another configuration: {details} "
                             f"(see {record.name}); choose a new or empty folder or the same options")
    if recorded.get("ambiguity_level") != wanted.get("ambiguity_level"):
        raise DataError(out, f"holds a synthetic data set of ambiguity {config.ambiguity!r} as it was defined "
                             f"then ({recorded.get('ambiguity_level')}), not as now ({wanted.get('ambiguity_level')}) "
                             f"(see {record.name}); choose a new or empty folder")


def _files_present(out: Path, meta: dict[str, Any], config: SynthConfig) -> bool:
    """Whether every file the recorded output consists of still exists."""
    images = meta.get("images")
    if not isinstance(images, dict):
        return False
    if config.format == "cirr":
        annotations = [path for split in cirr_layout.SPLITS for path in (cirr_layout.split_file(out, split),
                       cirr_layout.captions_file(out, split), cirr_layout.tags_file(out, split))]
        image_files = [out / str(record.get("path", "")) for record in images.values()]
    else:
        annotations = [path for category in config.categories for split in SPLIT_NAMES for path in (
            split_file(out, category, split), captions_file(out, category, split), tags_file(out, category, split))]
        image_files = [out / IMAGES_DIR / f"{image_id}.png" for image_id in images]
    return all(path.is_file() for path in annotations) and all(path.is_file() for path in image_files)
