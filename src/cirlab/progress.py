"""Progress bars for long work (a thin layer over tqdm).

Bars go to stderr and are disabled when ``CIRLAB_NO_PROGRESS=1`` is set or when the caller passes
``enabled=False`` (for example on non-zero ranks of a distributed run).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Whether progress bars are wanted in this process."""
    return os.environ.get("CIRLAB_NO_PROGRESS", "") not in {"1", "true", "yes"}


def progress(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None,
             unit: str = "it", enabled: bool = True, **kwargs: Any) -> tqdm:
    """Return a tqdm bar with cirlab's defaults (stderr, dynamic width, rate shown)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, dynamic_ncols=True,
                disable=not (enabled and progress_enabled()), **kwargs)
