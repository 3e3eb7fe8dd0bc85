"""Checks of everything a client sends, each failure a :class:`RequestError` with a status and one line.

Image ids are only ever looked up in the gallery, never joined into a path, but they are still
refused early when they could not be an id at all (``../``, slashes, backslashes, percent signs,
absolute paths, control characters), so that such requests are logged as what they are.
Uploads are decoded fully in memory under a byte limit and a pixel limit, with only the common
web image formats accepted, so that a decompression bomb or a truncated file is a 4xx, not a crash.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass

from PIL import Image

from cirlab.data.images import ImageDecodeError, decode_image

#: What an image id may look like: FashionIQ's ASINs, synthetic ids, file stems without odd characters.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Media types a search request's body may have: the form the page sends, and the URL-encoded one.
FORM_TYPES: tuple[str, ...] = ("multipart/form-data", "application/x-www-form-urlencoded")
#: Image formats an upload may have (PIL would otherwise also try EPS, PSD, ICO and other parsers).
UPLOAD_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on what one request may ask for."""

    max_k: int = 200  # most results one search returns
    default_k: int = 10  # results when the request names no k
    max_text_chars: int = 500  # longest modification text
    max_upload_bytes: int = 8 * 1024 * 1024  # largest uploaded reference image file
    max_upload_pixels: int = 16_000_000  # largest uploaded image, width x height (a 4000 x 4000 photo)
    max_page_size: int = 100  # most gallery items per page
    form_overhead_bytes: int = 64 * 1024  # room for the form's other fields and multipart headers
    body_timeout: float = 30.0  # seconds a request body may go without a byte arriving (then 408)

    @property
    def max_request_bytes(self) -> int:
        """Largest request body accepted before any parsing."""
        return self.max_upload_bytes + self.form_overhead_bytes

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form (what ``/api/info`` reports to the page)."""
        return asdict(self)


class RequestError(Exception):
    """A client error: HTTP ``status``, the offending ``field`` and a one-line ``message``."""

    def __init__(self, status: int, field: str, message: str) -> None:
        self.status = status
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def check_image_id(value: str, field: str) -> str:
    """``value`` when it looks like an image id; otherwise a 400 saying why it cannot be one."""
    if not value:
        raise RequestError(400, field, "the image id is empty")
    if not ID_PATTERN.fullmatch(value) or ".." in value:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise RequestError(400, field, f"{shown!r} is not a valid image id (letters, digits, '_', '-', '.'; "
                                       f"no paths)")
    return value


def check_form_type(content_type: str | None, fields: str) -> None:
    """Nothing when ``content_type`` is a form; otherwise a 415 saying what the endpoint expects.

    A JSON or empty body would otherwise parse as a form without fields and be refused for whichever
    field is checked first ("text is empty"), which hides the real mistake.
    """
    media = (content_type or "").partition(";")[0].strip().lower()
    if media not in FORM_TYPES:
        got = f"Content-Type {media!r}" if media else "no Content-Type"
        raise RequestError(415, "content-type", f"expects multipart/form-data (or {FORM_TYPES[1]}) with the fields "
                                                f"{fields}; got {got}")


def check_text(value: str | None, limits: ServeLimits) -> str:
    """The stripped modification text; 400 when empty or longer than the limit."""
    text = (value or "").strip()
    if not text:
        raise RequestError(400, "text", "the modification text is empty")
    if len(text) > limits.max_text_chars:
        raise RequestError(400, "text", f"the modification text has {len(text)} characters, the limit is "
                                        f"{limits.max_text_chars}")
    return text


def check_k(value: int | None, limits: ServeLimits) -> int:
    """``value`` (default ``limits.default_k``) when within 1..``max_k``; otherwise 400."""
    k = limits.default_k if value is None else value
    if not 1 <= k <= limits.max_k:
        raise RequestError(400, "k", f"must lie between 1 and {limits.max_k}, got {k}")
    return k


def check_category(value: str | None, categories: list[str], field: str = "category") -> str | None:
    """``value`` when it is one of ``categories`` (``None`` or empty: all categories); otherwise 400."""
    if value is None or value == "":
        return None
    if value not in categories:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise RequestError(400, field, f"unknown category {shown!r}; the gallery has {', '.join(categories)}")
    return value


def decode_upload(data: bytes, limits: ServeLimits, field: str = "reference_image") -> Image.Image:
    """Decode an uploaded image fully into RGB, or raise a 4xx :class:`RequestError`.

    413 when the file is over the byte limit; 400 when it is empty, not an image of an accepted
    format, truncated or corrupt, or has more pixels than the limit (checked from the header,
    before any pixel is decoded).
    """
    if len(data) > limits.max_upload_bytes:
        raise RequestError(413, field, f"the uploaded file is larger than the limit of "
                                       f"{limits.max_upload_bytes} bytes")
    if not data:
        raise RequestError(400, field, "the uploaded file is empty")
    try:
        return decode_image(io.BytesIO(data), max_pixels=limits.max_upload_pixels, formats=UPLOAD_FORMATS)
    except ImageDecodeError as exc:
        if exc.kind == "unidentified":
            message = f"not an image in an accepted format ({', '.join(UPLOAD_FORMATS)})"
        elif exc.kind == "corrupt":
            message = f"cannot decode the image ({exc.reason})"
        else:
            message = f"the {exc}"
        raise RequestError(400, field, message) from None
