"""Progress of long work on stderr: a tqdm bar on a terminal, plain periodic lines in a log.

A bar redrawn in place suits a terminal, but written to a file or a pipe its redraws pile up on single
lines (thousands of them over a training run). So when stderr is not a terminal, :func:`progress`
returns a :class:`LineProgress` instead, which writes one complete line at every tenth of the work
(at doubling counts when the total is unknown) and one at the end. When to write depends only on the
count, never on the clock, so a log reads the same on any machine.

Progress is off when ``CIRLAB_NO_PROGRESS=1`` is set (``cirlab --quiet`` sets it) or when the caller
passes ``enabled=False`` (for example on non-zero ranks of a distributed run).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

#: Environment variable that turns progress off when set to 1 (or true, yes).
NO_PROGRESS_ENV = "CIRLAB_NO_PROGRESS"

#: Lines a :class:`LineProgress` with a known total writes over the whole work.
LINES_PER_BAR = 10


def progress_enabled() -> bool:
    """Whether progress is wanted in this process."""
    return os.environ.get(NO_PROGRESS_ENV, "").strip().lower() not in {"1", "true", "yes"}


def progress(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None,
             unit: str = "it", enabled: bool = True, **kwargs: Any) -> tqdm | LineProgress[T]:
    """Progress of ``iterable`` (or of :meth:`update` calls) on stderr: a tqdm bar with cirlab's defaults
    on a terminal, plain periodic lines otherwise; ``kwargs`` go to tqdm."""
    shown = enabled and progress_enabled()
    if shown and not _is_terminal(sys.stderr):
        return LineProgress(iterable, desc=desc, total=total, unit=unit)
    return tqdm(iterable, desc=desc, total=total, unit=unit, dynamic_ncols=True, disable=not shown, **kwargs)


class LineProgress(Generic[T]):
    """The part of tqdm's interface cirlab uses (iteration, ``update``, ``set_postfix``, ``close``, ``with``),
    written as plain lines such as ``train: 140/700 step (20%), 00:12, 11.2 step/s, epoch=1, loss=0.4183``."""

    def __init__(self, iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None,
                 unit: str = "it") -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.n = 0
        self.postfix = ""
        self._written = 0  # the count of the last line written
        self._next = self._threshold(1)
        self._started = time.perf_counter()
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("this progress has no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units of work; write a line when that crosses the next period."""
        self.n += n
        if self.n >= self._next:
            self._write()
            while self._next <= self.n:
                self._next = self._threshold(self._next + 1)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Values shown at the end of the next line, as ``key=value``."""
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Text shown at the end of the next line."""
        self.postfix = s

    def close(self) -> None:
        """Write the last line, unless the last one written already showed the final count."""
        if self._closed:
            return
        self._closed = True
        if self.n != self._written:
            self._write()

    def format_line(self, elapsed: float) -> str:
        """The line for the current count after ``elapsed`` seconds (newline included)."""
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        parts = [f"{self.desc}: {count} {self.unit}" + (f" ({self.n / self.total:.0%})" if self.total else "")]
        parts.append(tqdm.format_interval(elapsed))
        if elapsed > 0 and self.n:
            rate = self.n / elapsed
            parts.append(f"{rate:.0f} {self.unit}/s" if rate >= 100 else f"{rate:.3g} {self.unit}/s")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts) + "\n"

    def _threshold(self, at_least: int) -> int:
        """The first count >= ``at_least`` at which a line is due: the next tenth of the total, or the next
        power of two when the total is unknown."""
        if self.total:
            if at_least > self.total:
                return sys.maxsize  # past the end: only close() writes
            period = max(1, -(-self.total // LINES_PER_BAR))
            return min(self.total, -(-at_least // period) * period)
        return 1 << max(0, at_least - 1).bit_length()

    def _write(self) -> None:
        self._written = self.n
        line = self.format_line(time.perf_counter() - self._started)
        sys.stderr.write(line)  # one write per line, so that lines of several processes never interleave
        sys.stderr.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
