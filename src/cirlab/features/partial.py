"""Partial extraction results, so that an interrupted extraction resumes where it stopped.

Work is cut into fixed chunks of images and of triplets. Each finished chunk is written atomically
to ``<cache>/.partial/`` (``images-000012.npz``: features, pixel hashes and decode failures;
``texts-000003.npz``: features of the four caption forms). ``.partial/partial.json`` holds the key of
the extraction the folder belongs to (encoder weights, preprocessing, precision, data fingerprint,
item order, chunk size, caption forms), and every chunk carries that key's digest: a folder of another
key is discarded as a whole, and a chunk whose digest differs (or that cannot be read) is deleted and
counted instead of being mixed in, so a cache never holds features of two extractions. Chunks are
numbered independently of the number of processes, so a run resumed with another ``torchrun`` size
reuses them. The folder is removed once the cache is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cirlab.io import atomic_path, atomic_write_json
from cirlab.locking import TEMPORARY_NAME

PARTIAL_DIR = ".partial"
KEY_FILE = "partial.json"
CHUNK_FILE_PATTERNS = ("images-*.npz", "texts-*.npz")


@dataclass(frozen=True)
class Preparation:
    """What :meth:`PartialResults.prepare` found in the folder."""

    status: str  # "fresh", "resumed" or "discarded" (the folder belonged to another extraction)
    foreign_chunks: int = 0  # chunks of another extraction (or unreadable) deleted from a resumed folder
    temporaries: int = 0  # temporary files of chunk writes a kill interrupted, deleted


class PartialResults:
    """The ``.partial`` folder of one cache folder, tied to one extraction ``key``."""

    def __init__(self, cache_root: str | Path, key: dict[str, Any]) -> None:
        self.folder = Path(cache_root) / PARTIAL_DIR
        self.key = json.loads(json.dumps(key))  # normalised as it will read back from disk
        #: The key's digest, written into every chunk and compared whenever a chunk is reused.
        self.digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()

    # ------------------------------------------------------------- lifecycle
    def prepare(self) -> Preparation:
        """Make the folder ready for this key (main process only, under the cache's writer lock).

        A folder of another key (other weights, data or options) is removed as a whole (``discarded``).
        In a folder of this key (``resumed``), chunks carrying another key's digest or unreadable, and
        temporaries of interrupted chunk writes, are deleted and counted.
        """
        status = "fresh"
        if self.folder.exists():
            if self._stored_key() == self.key:
                return self._clean()
            shutil.rmtree(self.folder)
            status = "discarded"
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / KEY_FILE, self.key)
        return Preparation(status)

    def _clean(self) -> Preparation:
        foreign = temporaries = 0
        for path in sorted(self.folder.iterdir()):
            if TEMPORARY_NAME.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                temporaries += 1
            elif any(path.match(pattern) for pattern in CHUNK_FILE_PATTERNS) and not self._ours(path):
                path.unlink(missing_ok=True)
                foreign += 1
        return Preparation("resumed", foreign_chunks=foreign, temporaries=temporaries)

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
        return self.folder / f"texts-{index:06d}.npz"

    def write_images(self, index: int, features: np.ndarray, hashes: list[str], failures: list[str]) -> None:
        """Store image chunk ``index``: ``[n, d]`` features (zero rows where decoding failed), a pixel
        hash per row (empty on failure) and the decoding problem per row (empty on success)."""
        with atomic_path(self.image_chunk(index)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, key=np.asarray(self.digest), features=np.asarray(features, dtype=np.float32),
                     hashes=np.asarray(hashes, dtype=str), failures=np.asarray(failures, dtype=str))

    def read_images(self, index: int) -> tuple[np.ndarray, list[str], list[str]]:
        """Inverse of :meth:`write_images`; a chunk of another extraction raises ``ValueError``."""
        with self._open(self.image_chunk(index)) as data:
            return data["features"], [str(h) for h in data["hashes"]], [str(f) for f in data["failures"]]

    def write_texts(self, index: int, features: np.ndarray) -> None:
        """Store text chunk ``index``: ``[n, 4, d]`` features."""
        with atomic_path(self.text_chunk(index)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, key=np.asarray(self.digest), features=np.asarray(features, dtype=np.float32))

    def read_texts(self, index: int) -> np.ndarray:
        """Inverse of :meth:`write_texts`; a chunk of another extraction raises ``ValueError``."""
        with self._open(self.text_chunk(index)) as data:
            return data["features"]

    def has_images(self, index: int) -> bool:
        """Whether image chunk ``index`` is done, by this extraction."""
        return self._ours(self.image_chunk(index))

    def has_texts(self, index: int) -> bool:
        """Whether text chunk ``index`` is done, by this extraction."""
        return self._ours(self.text_chunk(index))

    def _ours(self, path: Path) -> bool:
        """Whether ``path`` is a readable chunk carrying this extraction's key."""
        try:
            with self._open(path):
                return True
        except ValueError:
            return False

    def _open(self, path: Path) -> Any:
        """The arrays of the chunk at ``path`` (an open ``.npz``), after checking that it carries this
        extraction's key; ``ValueError`` saying why otherwise (unreadable, or another extraction's)."""
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"unreadable ({exc})") from None
        if not hasattr(data, "files"):
            raise ValueError("not a chunk file")
        try:
            if "key" in data.files and str(data["key"]) == self.digest:
                return data
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            data.close()
            raise ValueError(f"unreadable ({exc})") from None
        data.close()
        raise ValueError("written by a different extraction")
