"""Which image file to send for an id: only ids the service knows, only files found in the images folder.

The id → file mapping comes from listing the data set's ``images/`` folder once (through
:class:`cirlab.data.FashionIQ`); a requested id is looked up in that mapping and never joined into
a path, so no request can name a file outside the folder. A file is also served only when its real
path (symbolic links resolved, at each request) lies inside the folder: a link out of it is answered
404, as if the file were missing, and logged once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from cirlab.data.fashioniq import FashionIQ
from cirlab.data.layout import images_dir
from cirlab.errors import DataError

log = logging.getLogger("cirlab.serve")


class ImageFiles:
    """Image files of ``known_ids`` in the FashionIQ-layout folder ``data_root`` (``None``: no images)."""

    def __init__(self, data_root: str | Path | None, known_ids: Iterable[str]) -> None:
        self.root = Path(data_root) if data_root is not None else None
        self._known = frozenset(known_ids)
        self._paths: dict[str, Path] = {}
        self._folder: Path | None = None
        self._warned = False
        if self.root is not None:
            if not images_dir(self.root).is_dir():
                raise DataError(images_dir(self.root), "images folder not found (is --data the data set root?)")
            self._folder = Path(os.path.realpath(images_dir(self.root)))
            dataset = FashionIQ(self.root)
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
