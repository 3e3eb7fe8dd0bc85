"""Finding a form text field that is not valid UTF-8, from the raw bytes of the body as they stream in.

Starlette decodes such a field without complaint: a multipart field as Latin-1, a URL-encoded one
with U+FFFD replacement characters, so the search would run on mojibake. The decoded text cannot
tell (a valid "café" and a Latin-1 fallback can be the same string), so the check reads the bytes:
the body is fed, chunk by chunk, to python-multipart's parsers (the ones Starlette uses) with
callbacks that decode only the text fields, strictly and incrementally; file parts are skipped.
A body the parsers cannot read is left to Starlette to refuse.
"""

from __future__ import annotations

import codecs
from urllib.parse import unquote_to_bytes

from python_multipart.multipart import MultipartParser, QuerystringParser, parse_options_header

#: Media types of the forms that are checked.
MULTIPART, URLENCODED = b"multipart/form-data", b"application/x-www-form-urlencoded"


class FormTextCheck:
    """Fed one form body chunk by chunk; ``problem`` is ``(field, message)`` for the first bad text field."""

    def __init__(self) -> None:
        self.problem: tuple[str, str] | None = None
        self._parser: MultipartParser | QuerystringParser | None = None

    @staticmethod
    def for_content_type(content_type: bytes | None) -> FormTextCheck | None:
        """The check for a body of ``content_type``; ``None`` when it is not a form."""
        media, options = parse_options_header(content_type)
        if media == MULTIPART and options.get(b"boundary"):
            return _MultipartCheck(options[b"boundary"], options.get(b"charset", b"utf-8").decode("latin-1"))
        if media == URLENCODED:
            return _UrlEncodedCheck()
        return None

    def feed(self, data: bytes) -> None:
        """The next chunk of the body."""
        if self.problem is None and self._parser is not None and data:
            try:
                self._parser.write(data)
            except Exception:  # a malformed body: Starlette's parser refuses it with its own message
                self._parser = None

    def finish(self) -> None:
        """The body has ended."""
        if self.problem is None and self._parser is not None:
            try:
                self._parser.finalize()
            except Exception:
                self._parser = None

    def _refuse(self, field: str, charset: str, error: UnicodeDecodeError) -> None:
        if self.problem is None:
            byte = error.object[error.start:error.start + 1].hex() or "end"
            self.problem = (field, f"the field is not valid {charset} text (byte 0x{byte}); "
                                   f"text fields must be sent as UTF-8")


class _MultipartCheck(FormTextCheck):
    """Decodes every non-file part of a ``multipart/form-data`` body in the declared charset (UTF-8 by default)."""

    def __init__(self, boundary: bytes, charset: str) -> None:
        super().__init__()
        try:
            self._charset = codecs.lookup(charset).name
        except LookupError:
            self.problem = ("content-type", f"unknown charset {charset!r}; text fields must be sent as UTF-8")
            return
        self._header_name = self._header_value = self._disposition = b""
        self._field = ""
        self._decoder: codecs.IncrementalDecoder | None = None
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value_data, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end})

    def _part_begin(self) -> None:
        self._disposition, self._decoder = b"", None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"filename" not in options:
            self._field = options.get(b"name", b"").decode("latin-1")
            self._decoder = codecs.getincrementaldecoder(self._charset)("strict")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._decode(data[start:end], final=False)

    def _part_end(self) -> None:
        self._decode(b"", final=True)
        self._decoder = None

    def _decode(self, data: bytes, final: bool) -> None:
        if self._decoder is None:
            return
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as error:
            self._decoder = None
            self._refuse(self._field, self._charset, error)


class _UrlEncodedCheck(FormTextCheck):
    """Decodes every field of an ``application/x-www-form-urlencoded`` body as UTF-8 after percent-decoding."""

    def __init__(self) -> None:
        super().__init__()
        self._name = self._value = b""
        self._parser = QuerystringParser({
            "on_field_start": self._field_start, "on_field_name": self._field_name,
            "on_field_data": self._field_data, "on_field_end": self._field_end})

    def _field_start(self) -> None:
        self._name = self._value = b""

    def _field_name(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _field_data(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _field_end(self) -> None:
        try:
            unquote_to_bytes(self._value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError as error:
            name = unquote_to_bytes(self._name.replace(b"+", b" ")).decode("utf-8", "replace")
            self._refuse(name, "utf-8", error)
