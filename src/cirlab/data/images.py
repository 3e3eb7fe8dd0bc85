"""Finding and decoding the data set's image files.

An image's id is its file name without extension; ``.jpg``, ``.jpeg`` and ``.png`` are accepted.
Decoding problems (zero-byte, truncated or corrupt files, an image whose pixel count is far beyond
anything a retrieval data set holds) become one-line :class:`~cirlab.errors.DataError`\\ s.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image

from cirlab.data.layout import IMAGE_EXTENSIONS
from cirlab.errors import DataError

#: Largest pixel count accepted when decoding (about 6300 x 6300). FashionIQ's product photos are
#: well under one megapixel; anything this large is a wrong file or a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000


def scan_images(folder: Path) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Index ``folder``: image id → file, plus ids found with several files (e.g. both .jpg and .png).

    An id with several files is ambiguous; it is left out of the first mapping and listed in the
    second so that callers can report it.
    """
    found: dict[str, list[Path]] = {}
    if not folder.is_dir():
        raise DataError(folder, "images folder not found")
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.setdefault(stem, []).append(Path(entry.path))
    unique = {image_id: paths[0] for image_id, paths in found.items() if len(paths) == 1}
    ambiguous = {image_id: sorted(paths) for image_id, paths in found.items() if len(paths) > 1}
    return unique, ambiguous


def load_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` fully into an RGB image, or raise a one-line :class:`DataError`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(path, "image file not found") from None
    if size == 0:
        raise DataError(path, "image file is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise DataError(path, f"image is {width}x{height} pixels, over the limit of {max_pixels} pixels")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
            return image.convert("RGB")
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(path, "image pixel count exceeds the decompression-bomb limit") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot decode image ({exc})") from None
