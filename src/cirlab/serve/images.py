"""Which image file to send for an id: only ids the service knows, only files found in the images folder.

The id → file mapping comes from listing the data set's ``images/`` folder once (through
:class:`cirlab.data.FashionIQ`); a requested id is looked up in that mapping and never joined into
a path, so no request can name a file outside the folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cirlab.data.fashioniq import FashionIQ
from cirlab.data.layout import images_dir
from cirlab.errors import DataError


class ImageFiles:
    """Image files of ``known_ids`` in the FashionIQ-layout folder ``data_root`` (``None``: no images)."""

    def __init__(self, data_root: str | Path | None, known_ids: Iterable[str]) -> None:
        self.root = Path(data_root) if data_root is not None else None
        self._known = frozenset(known_ids)
        self._paths: dict[str, Path] = {}
        if self.root is not None:
            if not images_dir(self.root).is_dir():
                raise DataError(images_dir(self.root), "images folder not found (is --data the data set root?)")
            dataset = FashionIQ(self.root)
            self._paths = {i: p for i in dataset.available_image_ids() if i in self._known
                           for p in (dataset.image_path(i),) if p is not None}

    @property
    def available(self) -> bool:
        """Whether any image file can be served."""
        return bool(self._paths)

    def path(self, image_id: str) -> Path | None:
        """The file of ``image_id``, or ``None`` when the id is unknown or has no file."""
        return self._paths.get(image_id)

    def missing(self) -> int:
        """Known ids without a file (shown as blank tiles on the page)."""
        return len(self._known) - len(self._paths)
