"""The training log: loss, learning rate and throughput per step, metrics per epoch.

Rows go to ``OUT/steps.csv`` and ``OUT/epochs.csv`` (flushed after each row, so a killed run keeps its
log) and, when enabled, to TensorBoard under ``OUT/tensorboard``. On resume, rows and events after
the checkpoint are dropped first, so the log reads as if the run had never stopped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from cirlab.io import atomic_write_text

STEPS_CSV = "steps.csv"
EPOCHS_CSV = "epochs.csv"
TENSORBOARD_DIR = "tensorboard"


class RunLog:
    """Writes the step and epoch logs of one run; a disabled log (non-zero ranks) writes nothing."""

    def __init__(self, out: Path, *, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int = 0, resume_epoch: int = 0) -> None:
        self.enabled = enabled
        self.steps_path = out / STEPS_CSV
        self.epochs_path = out / EPOCHS_CSV
        self._writer: Any = None
        self._fields: dict[Path, list[str]] = {}
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        _truncate(self.steps_path, "step", resume_step)
        _truncate(self.epochs_path, "epoch", resume_epoch)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(out / TENSORBOARD_DIR),
                                         purge_step=resume_step + 1 if resume_step else None)

    def step(self, row: dict[str, Any]) -> None:
        """Log one optimiser step (``row`` has at least ``step``)."""
        if not self.enabled:
            return
        self._append(self.steps_path, row)
        if self._writer is not None:
            for key, value in row.items():
                if key not in {"epoch", "step"}:
                    self._writer.add_scalar(f"train/{key}", value, row["step"])

    def epoch(self, row: dict[str, Any]) -> None:
        """Log one finished epoch (``row`` has at least ``epoch`` and ``step``)."""
        if not self.enabled:
            return
        self._append(self.epochs_path, row)
        if self._writer is not None:
            for key, value in row.items():
                if key not in {"epoch", "step"} and isinstance(value, (int, float)):
                    self._writer.add_scalar(f"epoch/{key}", value, row["step"])
            self._writer.flush()

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        """Append ``row``; the header comes from the file or the first row written (no columns are added later)."""
        if path not in self._fields:
            header = read_rows_header(path)
            self._fields[path] = header or list(row)
            if not header:
                with open(path, "w", newline="", encoding="utf-8") as handle:
                    csv.DictWriter(handle, fieldnames=self._fields[path]).writeheader()
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._fields[path], extrasaction="ignore")
            writer.writerow({key: _format(value) for key, value in row.items()})

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a log CSV (empty when the file does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_rows_header(path: Path) -> list[str]:
    """Column names of a log CSV (empty when the file is absent or empty)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _format(value: Any) -> Any:
    return f"{value:.9g}" if isinstance(value, float) else value


def _truncate(path: Path, key: str, last: int) -> None:
    """Keep the rows whose ``key`` column is at most ``last`` (all rows go when ``last`` is 0)."""
    if not path.exists():
        return
    rows = read_rows(path)
    if not rows:
        return
    fields = list(rows[0])
    kept = [r for r in rows if int(r[key]) <= last]
    if len(kept) == len(rows):
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(kept)
    atomic_write_text(path, buffer.getvalue())
