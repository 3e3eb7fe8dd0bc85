"""Partial extraction results, so that an interrupted extraction resumes where it stopped.

Work is cut into fixed chunks of images and of triplets. Each finished chunk is written atomically
to ``<cache>/.partial/`` (``images-000012.npz``: features, pixel hashes and decode failures;
``texts-000003.npy``: features of the four caption forms). ``.partial/partial.json`` ties the
chunks to what produced them (encoder weights, preprocessing, precision, data fingerprint, item
order, chunk size); chunks written under another key are discarded rather than mixed in. Chunks are
numbered independently of the number of processes, so a run resumed with another ``torchrun``
size reuses them. The folder is removed once the cache is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cirlab.io import atomic_path, atomic_write_json

PARTIAL_DIR = ".partial"
KEY_FILE = "partial.json"


class PartialResults:
    """The ``.partial`` folder of one cache folder, tied to one extraction ``key``."""

    def __init__(self, cache_root: str | Path, key: dict[str, Any]) -> None:
        self.folder = Path(cache_root) / PARTIAL_DIR
        self.key = json.loads(json.dumps(key))  # normalised as it will read back from disk

    # ------------------------------------------------------------- lifecycle
    def prepare(self) -> str:
        """Make the folder ready for this key; return ``fresh``, ``resumed`` or ``discarded``.

        ``discarded`` means chunks of another extraction (other weights, data or options) were
        found and removed.
        """
        status = "fresh"
        if self.folder.exists():
            if self._stored_key() == self.key:
                return "resumed"
            shutil.rmtree(self.folder)
            status = "discarded"
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / KEY_FILE, self.key)
        return status

    def remove(self) -> None:
        """Delete the folder and every chunk in it."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _stored_key(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / KEY_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None

    # ---------------------------------------------------------------- chunks
    def image_chunk(self, index: int) -> Path:
        """File of image chunk ``index``."""
        return self.folder / f"images-{index:06d}.npz"

    def text_chunk(self, index: int) -> Path:
        """File of text chunk ``index``."""
        return self.folder / f"texts-{index:06d}.npy"

    def write_images(self, index: int, features: np.ndarray, hashes: list[str], failures: list[str]) -> None:
        """Store image chunk ``index``: ``[n, d]`` features (zero rows where decoding failed), a pixel
        hash per row (empty on failure) and the decoding problem per row (empty on success)."""
        with atomic_path(self.image_chunk(index)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, features=np.asarray(features, dtype=np.float32),
                     hashes=np.asarray(hashes, dtype=str), failures=np.asarray(failures, dtype=str))

    def read_images(self, index: int) -> tuple[np.ndarray, list[str], list[str]]:
        """Inverse of :meth:`write_images`."""
        with np.load(self.image_chunk(index), allow_pickle=False) as data:
            return data["features"], [str(h) for h in data["hashes"]], [str(f) for f in data["failures"]]

    def write_texts(self, index: int, features: np.ndarray) -> None:
        """Store text chunk ``index``: ``[n, 4, d]`` features."""
        with atomic_path(self.text_chunk(index)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(features, dtype=np.float32))

    def read_texts(self, index: int) -> np.ndarray:
        """Inverse of :meth:`write_texts`."""
        return np.load(self.text_chunk(index), allow_pickle=False)

    def has_images(self, index: int) -> bool:
        """Whether image chunk ``index`` is done."""
        return self.image_chunk(index).is_file()

    def has_texts(self, index: int) -> bool:
        """Whether text chunk ``index`` is done."""
        return self.text_chunk(index).is_file()
