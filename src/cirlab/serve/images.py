"""Which image file to send for an id: only ids the service knows, only files found in the images folder.

The id → file mapping comes from the data set's reader (:func:`cirlab.data.open_dataset`: FashionIQ's
``images/`` folder listed once, CIRR's split files); a requested id is looked up in that mapping and
never joined into a path, so no request can name a file outside the folder. A file is also served only when its real
path (symbolic links resolved, at each request) lies inside the folder: a link out of it is answered
404, as if the file were missing, and logged once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from cirlab.data.dataset import open_dataset
from cirlab.errors import DataError

log = logging.getLogger("cirlab.serve")


class ImageFiles:
    """Image files of ``known_ids`` in the data set folder ``data_root`` (``None``: no images)."""

    def __init__(self, data_root: str | Path | None, known_ids: Iterable[str]) -> None:
        self.root = Path(data_root) if data_root is not None else None
        self._known = frozenset(known_ids)
        self._paths: dict[str, Path] = {}
        self._folder: Path | None = None
        self._warned = False
        if self.root is not None:
            dataset = open_dataset(self.root)
            if not dataset.images_root.is_dir():
                raise DataError(dataset.images_root, "images folder not found (is --data the data set root?)")
            self._folder = Path(os.path.realpath(dataset.images_root))
            self._paths = {i: p for i in dataset.available_image_ids() if i in self._known
                           for p in (dataset.image_path(i),) if p is not None}

    @property
    def available(self) -> bool:
        """Whether any image file can be served."""
        return bool(self._paths)

    def path(self, image_id: str) -> Path | None:
        """The real path of ``image_id``'s file, or ``None`` when the id is unknown, has no file, or its file
        is a symbolic link to a path outside the images folder."""
        listed = self._paths.get(image_id)
        if listed is None or self._folder is None:
            return None
        real = Path(os.path.realpath(listed))
        if not real.is_relative_to(self._folder):
            if not self._warned:
                log.warning("%s links outside %s: not served (such images show as missing)", listed, self._folder)
                self._warned = True
            return None
        return real

    def missing(self) -> int:
        """Known ids without a file (shown as blank tiles on the page)."""
        return len(self._known) - len(self._paths)
