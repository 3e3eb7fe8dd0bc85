"""Finding and decoding the data set's image files.

An image's id is its file name without extension; ``.jpg``, ``.jpeg`` and ``.png`` are accepted.
Decoding problems (zero-byte, truncated or corrupt files, an image whose pixel count is far beyond
anything a retrieval data set holds) become one-line :class:`~cirlab.errors.DataError`\\ s.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

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


class ImageDecodeError(ValueError):
    """An image that cannot be used, with the reason as ``kind``.

    ``kind`` is ``too_large`` (over the pixel limit), ``bomb`` (over PIL's decompression-bomb limit),
    ``unidentified`` (not an image in an accepted format) or ``corrupt`` (truncated or damaged);
    ``reason`` is the decoder's own words for ``corrupt`` and ``unidentified``.
    """

    def __init__(self, kind: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = reason


def decode_image(source: Path | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 formats: Sequence[str] | None = None) -> Image.Image:
    """Decode ``source`` fully into RGB, or raise :class:`ImageDecodeError`.

    The pixel count is checked from the header, before any pixel is decoded, and PIL's
    decompression-bomb warning is an error, so neither a huge file nor a bomb is ever expanded.
    Shared by the data set reader and the upload path of the search service.
    """
    try:
        with Image.open(source, formats=list(formats) if formats else None) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError("too_large",
                                       f"image is {width}x{height} pixels, over the limit of {max_pixels} pixels")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
            return image.convert("RGB")
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError("bomb", "image pixel count exceeds the decompression-bomb limit") from None
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("unidentified", f"cannot decode image ({exc})", reason=str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageDecodeError("corrupt", f"cannot decode image ({reason})", reason=reason) from None


def load_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` fully into an RGB image, or raise a one-line :class:`DataError`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(path, "image file not found") from None
    if size == 0:
        raise DataError(path, "image file is empty (0 bytes)")
    try:
        return decode_image(path, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        raise DataError(path, str(exc)) from None
