"""What a training run writes about itself, and what each file means.

A run folder ``RUN`` holds, besides its checkpoints (:mod:`cirlab.engine.checkpoint`):

``steps.csv``
    One row per logged optimiser step (every ``log_every`` steps): ``epoch`` (1-based), ``step``
    (global, 1-based), ``lr`` (learning rate used by the step), ``loss``, then the statistics the
    objective declares (for combiner training: the loss's own, such as ``active_fraction``, and
    ``sample_time_s``, the negative-mining time), ``grad_norm`` (when gradients are clipped) and
    ``step_time_s``. Times are the device's: on a GPU they are measured between CUDA events, so they
    count the work and not its launch. With several processes, values are averaged over them; a
    statistic that a step did not report stays empty. Rows are written when the engine reads the
    statistics back from the device (every ``sync_every`` steps and at the end of an epoch).

``epochs.csv``
    One row per epoch, the same records as ``metrics.json``'s ``history``: the union of their keys,
    ordered ``epoch, step, steps, lr, best``, then ``train/*``, ``val/*`` (the selection metric first),
    ``time/*``, ``sampler/*``. Row ``epoch`` 0 is the evaluation before training, where the run makes one.

``metrics.json``
    ``status`` (``running`` while training, and after a kill; ``stopped`` when ``stop_after_epochs``
    ended the invocation early; ``complete``), ``epochs_completed``, ``steps``, ``config``, ``best``
    (``epoch``, ``metric``, ``value`` and the ``metrics`` record of the best evaluated epoch, the one in
    ``best/``, for runs that select one), ``last_eval`` (``epoch`` and ``metrics`` of the latest
    evaluation), ``provenance`` (versions of cirlab, Python and the libraries, and the git commit), the
    objective's own sections (combiner training adds ``data``), and ``history``: the flat per-epoch
    records — ``epoch``, ``step`` (global steps done), ``steps`` (steps in this epoch), ``lr`` (at its last
    step), ``best`` (1 when this epoch's evaluation became the best so far), ``train/<stat>`` (means over
    the epoch's steps), ``val/<metric>`` (evaluated epochs only), ``time/train_s``, ``time/eval_s``,
    ``time/epoch_s``, ``time/mean_step_s`` (seconds), and the objective's epoch statistics (combiner
    training: ``sampler/<counter>`` summed over processes, ``time/mean_sample_s``).

``config.json``
    The run's resolved configuration, as its command resolved it (every key, defaults included).

``tensorboard/``
    TensorBoard event files: the ``steps.csv`` columns under ``step/`` against the global step, and
    every numeric ``history`` value under its own name against the epoch.

Every file but ``steps.csv`` is rewritten atomically after each epoch; ``steps.csv`` is appended, and
on resume cut back to the checkpoint's step, so a resumed run's files read as if it had never stopped.
Everything an epoch logged is on disk (flushed and synced) before that epoch's checkpoint exists.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cirlab.io import atomic_write_json, atomic_write_text

STEPS_FILE = "steps.csv"
EPOCHS_FILE = "epochs.csv"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
TENSORBOARD_DIR = "tensorboard"
METRICS_FORMAT_VERSION = 2

#: Columns every ``steps.csv`` starts with; the objective's statistics and ``step_time_s`` follow.
LEADING_STEP_COLUMNS: tuple[str, ...] = ("epoch", "step", "lr", "loss")

#: First columns of ``epochs.csv``, then the keys grouped by these prefixes.
LEADING_COLUMNS: tuple[str, ...] = ("epoch", "step", "steps", "lr", "best")
COLUMN_GROUPS: tuple[str, ...] = ("train/", "val/headline", "val/mean/", "val/", "time/", "sampler/")


class RunLog:
    """Writes ``steps.csv``, ``epochs.csv``, ``metrics.json``, ``config.json`` and TensorBoard events of one run.

    Only the main process of a distributed run creates one.
    """

    def __init__(self, run_dir: str | Path, step_columns: Sequence[str], *, tensorboard: bool,
                 resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.step_columns = tuple(step_columns)
        steps_path = self.run_dir / STEPS_FILE
        if resume_step is None or not steps_path.exists():
            atomic_write_text(steps_path, _csv_line(self.step_columns))
        else:
            _truncate_steps(steps_path, resume_step, self.step_columns)
        self._steps = open(steps_path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._steps_writer = csv.writer(self._steps, lineterminator="\n")
        self._tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self._tensorboard = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR), purge_step=purge)

    def write_config(self, config: dict[str, Any]) -> None:
        """Write ``config.json``."""
        atomic_write_json(self.run_dir / CONFIG_FILE, config)

    def log_step(self, row: dict[str, Any]) -> None:
        """Append one step to ``steps.csv`` and TensorBoard."""
        self._steps_writer.writerow([_cell(row.get(column)) for column in self.step_columns])
        if self._tensorboard is not None:
            for column in self.step_columns[2:]:
                value = row.get(column)
                if _is_number(value):
                    self._tensorboard.add_scalar(f"step/{column}", value, row["step"])

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Send one epoch's numeric values to TensorBoard."""
        if self._tensorboard is None:
            return
        for key, value in record.items():
            if key != "epoch" and _is_number(value):
                self._tensorboard.add_scalar(key, value, record["epoch"])

    def write_summary(self, history: Sequence[dict[str, Any]], summary: dict[str, Any]) -> None:
        """Rewrite ``epochs.csv`` from ``history`` and ``metrics.json`` from ``summary``."""
        columns = epoch_columns(history)
        text = _csv_line(columns) + "".join(_csv_line([_cell(r.get(c)) for c in columns]) for r in history)
        atomic_write_text(self.run_dir / EPOCHS_FILE, text)
        atomic_write_json(self.run_dir / METRICS_FILE, {"format_version": METRICS_FORMAT_VERSION, **summary,
                                                        "history": list(history)})

    def sync(self) -> None:
        """Put every step row and TensorBoard event logged so far on disk (before a checkpoint covers them)."""
        self._steps.flush()
        os.fsync(self._steps.fileno())
        if self._tensorboard is not None:
            self._tensorboard.flush()

    def close(self) -> None:
        """Flush and close every file."""
        self._steps.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def epoch_columns(history: Sequence[dict[str, Any]]) -> list[str]:
    """Columns of ``epochs.csv``: every key of ``history``, grouped as :data:`COLUMN_GROUPS` orders them."""
    keys = list(dict.fromkeys(key for record in history for key in record))

    def group(key: str) -> int:
        if key in LEADING_COLUMNS:
            return LEADING_COLUMNS.index(key) - len(LEADING_COLUMNS)
        return next((i for i, prefix in enumerate(COLUMN_GROUPS) if key.startswith(prefix)), len(COLUMN_GROUPS))

    return sorted(keys, key=group)  # stable: first-seen order within a group


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV file written here, as dictionaries of strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _truncate_steps(path: Path, last_step: int, columns: Sequence[str]) -> None:
    """Keep the header and the rows of ``steps.csv`` up to ``last_step``."""
    rows = read_csv(path)
    kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= last_step]
    text = _csv_line(columns) + "".join(_csv_line([r.get(c, "") for c in columns]) for r in kept)
    atomic_write_text(path, text)


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
