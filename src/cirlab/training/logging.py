"""What a training run writes about itself, and what each file means.

A run folder (``RUN_DIR``) holds, besides the ``best/`` and ``last/`` checkpoints:

``config.json``
    The resolved :class:`~cirlab.training.config.TrainConfig` (every key, defaults included).

``steps.csv``
    One row per logged optimiser step (every ``log_every`` steps), columns :data:`STEP_COLUMNS`:
    ``epoch`` (1-based), ``step`` (global, 1-based), ``lr`` (learning rate used by the step), ``loss``,
    ``active_fraction`` (share of (query, negative) terms that contribute to the gradient, as the loss
    defines it), ``mean_d_pos`` / ``mean_d_neg`` (mean distance from query to positive / to the
    negatives, under the loss's distance),
    ``sample_time_s`` (negative mining time of the step) and ``step_time_s`` (whole step). With several
    processes, values are averaged over them. Losses that do not report a statistic leave it empty.

``epochs.csv``
    One row per epoch, the same records as ``metrics.json``'s ``history``. Columns are the union of
    their keys, empty where a record lacks one, in the order ``epoch, step, steps, lr, best``, then
    ``train/*``, ``val/headline``, ``val/mean/*``, ``val/<category>/*``, ``time/*``, ``sampler/*``.
    Row ``epoch`` 0 is the evaluation before training.

``metrics.json``
    ``status`` (``running`` while training, and after a kill; ``stopped`` when ``stop_after_epochs``
    ended the invocation early; ``complete``), ``epochs_completed``, ``steps``, ``config``, ``data``
    (``features``, ``categories``, ``train_triplets``, ``gallery_size``, ``steps_per_epoch``,
    ``processes``, ``skipped_without_target``, ``targets_added_to_gallery``; see
    :class:`~cirlab.training.data.TrainingData`),
    ``best`` (``epoch``, ``headline`` and the ``metrics`` record of the best evaluated epoch, the one in
    ``best/``), ``last_eval`` (the same for the latest evaluation) and ``history``: a list of flat
    per-epoch records with these keys:

    - ``epoch``, ``step`` (global steps done), ``steps`` (steps in this epoch), ``lr`` (at its last step);
    - ``train/loss``, ``train/active_fraction``, ``train/mean_d_pos``, ``train/mean_d_neg``: means over
      the epoch's steps;
    - ``time/epoch_s`` (training + evaluation), ``time/train_s``, ``time/eval_s`` (evaluated epochs),
      ``time/mean_sample_s`` (mean negative-mining time per step, 0 with in-batch negatives),
      ``time/mean_step_s``; all in seconds;
    - ``val/headline`` (mean of mean Recall@10 and mean Recall@50, in percent), ``val/mean/R@K`` and
      ``val/<category>/R@K`` for K in 1, 5, 10, 50, on evaluated epochs only (every ``eval_every``
      epochs, the last one and epoch 0);
    - ``sampler/<name>``: the sampler's ``stats()`` for the epoch (it is reset at each epoch's start):
      counters such as ``queries``, ``guard_exact_duplicates``, ``guard_near_duplicates`` and
      ``fallback_negatives``, summed over processes (a state such as the curriculum's ``stage`` takes
      the largest value instead);
    - ``best``: 1 when this epoch's evaluation became the best so far (and was saved to ``best/``).

``tensorboard/``
    TensorBoard event files: the ``steps.csv`` columns under ``step/`` against the global step, and
    every numeric ``history`` value against the epoch.

Every file but ``steps.csv`` is rewritten atomically after each epoch; ``steps.csv`` is appended, and
on resume cut back to the checkpoint's step, so a resumed run's files read as if it had never stopped.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cirlab.io import atomic_write_json, atomic_write_text

STEPS_FILE = "steps.csv"
EPOCHS_FILE = "epochs.csv"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
TENSORBOARD_DIR = "tensorboard"
METRICS_FORMAT_VERSION = 1

#: Columns of ``steps.csv``, in order.
STEP_COLUMNS: tuple[str, ...] = ("epoch", "step", "lr", "loss", "active_fraction", "mean_d_pos", "mean_d_neg",
                                 "sample_time_s", "step_time_s")


#: First columns of ``epochs.csv``, then the keys grouped by these prefixes.
LEADING_COLUMNS: tuple[str, ...] = ("epoch", "step", "steps", "lr", "best")
COLUMN_GROUPS: tuple[str, ...] = ("train/", "val/headline", "val/mean/", "val/", "time/", "sampler/")


class RunRecorder:
    """Writes ``steps.csv``, ``epochs.csv``, ``metrics.json`` and TensorBoard events of one run (rank 0 only)."""

    def __init__(self, run_dir: str | Path, *, tensorboard: bool, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        steps_path = self.run_dir / STEPS_FILE
        if resume_step is None or not steps_path.exists():
            atomic_write_text(steps_path, _csv_line(STEP_COLUMNS))
        else:
            _truncate_steps(steps_path, resume_step)
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
        self._steps_writer.writerow([_cell(row.get(column)) for column in STEP_COLUMNS])
        if self._tensorboard is not None:
            for column in STEP_COLUMNS[2:]:
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
        self._tensorboard.flush()

    def write_summary(self, history: Sequence[dict[str, Any]], summary: dict[str, Any]) -> None:
        """Rewrite ``epochs.csv`` from ``history`` and ``metrics.json`` from ``summary``; flush ``steps.csv``."""
        self._steps.flush()
        columns = epoch_columns(history)
        text = _csv_line(columns) + "".join(_csv_line([_cell(r.get(c)) for c in columns]) for r in history)
        atomic_write_text(self.run_dir / EPOCHS_FILE, text)
        atomic_write_json(self.run_dir / METRICS_FILE, {"format_version": METRICS_FORMAT_VERSION, **summary,
                                                        "history": list(history)})

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


def _truncate_steps(path: Path, last_step: int) -> None:
    """Keep the header and the rows of ``steps.csv`` up to ``last_step``."""
    rows = read_csv(path)
    kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= last_step]
    text = _csv_line(STEP_COLUMNS) + "".join(_csv_line([r.get(c, "") for c in STEP_COLUMNS]) for r in kept)
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
