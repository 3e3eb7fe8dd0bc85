"""Finding and decoding the data set's image files.

An image's id is its file name without extension; ``.jpg``, ``.jpeg`` and ``.png`` are accepted.
Decoding problems (zero-byte, truncated or corrupt files, an image whose pixel count is far beyond
anything a retrieval data set holds) and folder problems (a symlink loop, an unlistable folder)
become one-line :class:`~cirlab.errors.DataError`\\ s.

Every image becomes 8-bit RGB the same way, whatever its file holds (:func:`to_rgb`): the EXIF
orientation is applied; 16-bit and 32-bit integer grey (``I;16``, ``I``) is scaled by 1/257 and float
grey (``F``) by 255, both rounded; alpha and palette or colour-key transparency are composited over
white (:data:`ALPHA_BACKGROUND`); CMYK and every other mode take PIL's own conversion. Padding and
resizing happen afterwards, on RGB.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from cirlab.data.layout import IMAGE_EXTENSIONS
from cirlab.errors import DataError

#: Largest pixel count accepted when decoding (about 6300 x 6300). FashionIQ's product photos are
#: well under one megapixel; anything this large is a wrong file or a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000

#: Version of the decoding rules of :func:`to_rgb`. Version 1 clipped 16-bit grey to white, dropped
#: alpha without compositing and ignored EXIF orientation; version 2 is the rules of this module.
#: Features of an image depend on it, so whatever records how features were made records it too.
DECODE_VERSION = 2

#: What transparent pixels are composited over: white, the background of product photographs.
ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)

#: Integer grey modes read as 16-bit samples (0..65535); PIL opens 16-bit PNG and TIFF grey in these.
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def list_image_files(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` that are image files (an accepted extension; symlinks followed).

    A missing or unlistable folder and a symlink loop among the image entries are one-line
    :class:`DataError`\\ s naming the folder or the entry.
    """
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries
                    if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and _is_file(entry)]
    except FileNotFoundError:
        raise DataError(folder, "images folder not found") from None
    except NotADirectoryError:
        raise DataError(folder, "is not a folder, expected the images folder") from None
    except OSError as exc:
        raise DataError(folder, f"cannot list the images folder: {_os_problem(exc)}") from None


def scan_images(folder: Path) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Index ``folder``: image id → file, plus ids found with several files (e.g. both .jpg and .png).

    An id with several files is ambiguous; it is left out of the first mapping and listed in the
    second so that callers can report it.
    """
    found: dict[str, list[Path]] = {}
    for entry in list_image_files(folder):
        found.setdefault(os.path.splitext(entry.name)[0], []).append(Path(entry.path))
    unique = {image_id: paths[0] for image_id, paths in found.items() if len(paths) == 1}
    ambiguous = {image_id: sorted(paths) for image_id, paths in found.items() if len(paths) > 1}
    return unique, ambiguous


def _is_file(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a file (following symlinks); a symlink loop is an error naming the entry."""
    try:
        return entry.is_file()
    except OSError as exc:
        raise DataError(entry.path, _os_problem(exc)) from None


def _os_problem(exc: OSError) -> str:
    """The problem an :class:`OSError` reports, in words (a symlink loop says so)."""
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    return exc.strerror or type(exc).__name__


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
    """Decode ``source`` fully into 8-bit RGB (see :func:`to_rgb`), or raise :class:`ImageDecodeError`.

    The pixel count is checked from the header, before any pixel is decoded, and PIL's
    decompression-bomb warning is an error, so neither a huge file nor a bomb is ever expanded.
    Shared by the data set reader and the upload path of the search service, so that a file gives
    the same pixels (and features) whichever way it comes in.
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
            return to_rgb(image)
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
    except OSError as exc:
        raise DataError(path, f"cannot read the image file: {_os_problem(exc)}") from None
    if size == 0:
        raise DataError(path, "image file is empty (0 bytes)")
    try:
        return decode_image(path, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        raise DataError(path, str(exc)) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` upright and in 8-bit RGB, by the rules of :data:`DECODE_VERSION`.

    * EXIF orientation is applied (:func:`PIL.ImageOps.exif_transpose`), so a photo is encoded as it
      is shown; an unreadable EXIF block leaves the image as stored.
    * ``I;16`` and ``I`` grey are 16-bit samples: each becomes ``round(value / 257)`` (65535 → 255),
      values outside 0..65535 clipped. ``F`` grey is read as 0..1: ``round(value * 255)``, clipped,
      NaN → 0. (PIL's own conversion clips these modes to 0..255, which turns a 16-bit image white.)
    * Alpha (``RGBA``, ``LA``, ``PA``, premultiplied variants) and transparency declared for a
      palette, grey or RGB image are composited over :data:`ALPHA_BACKGROUND` (white).
    * CMYK, YCbCr, LAB, HSV, palette and 1-bit images take PIL's conversion (CMYK: ``R = 255 - C - K``
      per channel, clipped; no ICC profile is applied).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PIL's "Corrupt EXIF data": orientation unknown
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        scaled = values * 255.0 if image.mode == "F" else values / 257.0
        grey = np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")
