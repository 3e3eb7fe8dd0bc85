"""The demo's record of its stages, ``OUT/demo-state.json``: which stage finished with which options.

Each stage has a **key**, a hash of its own options chained with the key of the stage before it, so
that a change anywhere changes the keys of that stage and of every later one. A stage whose record
says ``complete`` with the current key (and whose folder is still there) is skipped. A record with
another key means the stage's folder holds the product of other options: it is removed and the stage
redone. A ``running`` record with the current key is an interrupted stage; its folder is kept, and the
stage resumes from what it finished (every stage's library function resumes).

The file is rewritten atomically after every change, so an interrupted demo leaves a readable record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cirlab.errors import CacheMismatchError
from cirlab.io import atomic_write_json

STATE_FILE = "demo-state.json"
STATE_FORMAT_VERSION = 1
RUNNING, COMPLETE = "running", "complete"


def stage_key(options: dict[str, Any], previous: str | None) -> str:
    """The key of a stage with ``options`` that comes after a stage keyed ``previous``."""
    text = json.dumps({"options": options, "after": previous}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class StageRecord:
    """What the state file says about one stage."""

    key: str  # the stage's key when it last started
    reset_key: str  # the part of the key whose change makes the stage's folder stale
    status: str  # "running" (started, not finished) or "complete"
    options: dict[str, Any] = field(default_factory=dict)  # the stage's own options, for people reading the file
    summary: str = ""  # one line about what the stage produced
    seconds: float = 0.0  # time of the invocation that completed it
    finished: str = ""  # ISO time of completion


class DemoState:
    """``OUT/demo-state.json``, read once and rewritten after every change."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / STATE_FILE
        self.stages: dict[str, StageRecord] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format_version") != STATE_FORMAT_VERSION:
                raise ValueError(f"format {data.get('format_version')!r}, expected {STATE_FORMAT_VERSION}")
            self.stages = {name: StageRecord(**record) for name, record in data["stages"].items()}
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CacheMismatchError(f"{self.path}: unreadable demo record ({exc}); delete it (every stage is "
                                     f"then checked again) or choose another --out") from None

    def get(self, name: str) -> StageRecord | None:
        """The record of stage ``name``, if any."""
        return self.stages.get(name)

    def start(self, name: str, key: str, reset_key: str, options: dict[str, Any]) -> None:
        """Record that stage ``name`` started with ``key``."""
        self.stages[name] = StageRecord(key=key, reset_key=reset_key, status=RUNNING, options=options)
        self._write()

    def complete(self, name: str, summary: str, seconds: float) -> None:
        """Record that stage ``name`` finished."""
        record = self.stages[name]
        record.status, record.summary, record.seconds = COMPLETE, summary, round(seconds, 1)
        record.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._write()

    def forget(self, name: str) -> None:
        """Drop the record of stage ``name`` (its product was removed)."""
        if self.stages.pop(name, None) is not None:
            self._write()

    def _write(self) -> None:
        atomic_write_json(self.path, {"format_version": STATE_FORMAT_VERSION,
                                      "stages": {name: record.__dict__ for name, record in self.stages.items()}})
