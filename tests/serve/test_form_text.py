"""The UTF-8 check of form text fields, fed the raw body in chunks of every size."""

import pytest

from cirlab.serve.form_text import FormTextCheck

BOUNDARY = b"XyZ"


def multipart(*parts: tuple[str, bytes, str | None]) -> bytes:
    """A multipart body of ``(name, content, filename or None)`` parts."""
    body = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += b"--" + BOUNDARY + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + b"--" + BOUNDARY + b"--\r\n"


def check(content_type: bytes, body: bytes, chunk: int) -> tuple[str, str] | None:
    checker = FormTextCheck.for_content_type(content_type)
    for start in range(0, len(body), chunk):
        checker.feed(body[start:start + chunk])
    checker.finish()
    return checker.problem


MULTIPART = b"multipart/form-data; boundary=" + BOUNDARY
URLENCODED = b"application/x-www-form-urlencoded"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_valid_text_split_anywhere_passes_and_files_are_not_read_as_text(chunk):
    body = multipart(("text", "rayé ✓ 😀".encode(), None), ("k", b"5", None),
                     ("reference_image", b"\x89PNG\xff\xfe\x00\xe9", "a.png"))
    assert check(MULTIPART, body, chunk) is None
    assert check(URLENCODED, b"text=ray%C3%A9+%E2%9C%93&k=5", chunk) is None


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_the_first_bad_text_field_is_named(chunk):
    body = multipart(("reference_image", b"\xff", "a.png"), ("category", b"dress", None), ("text", b"ok \xe9", None),
                     ("other", b"\xff", None))
    assert check(MULTIPART, body, chunk) == ("text", "the field is not valid utf-8 text (byte 0xe9); text fields "
                                                     "must be sent as UTF-8")
    assert check(MULTIPART, multipart(("text", b"cut \xe2\x9c", None)), chunk)[0] == "text"  # truncated at the end
    assert check(URLENCODED, b"k=5&text=caf%E9", chunk)[0] == "text"
    assert check(URLENCODED, b"k=5&te%78t=caf\xe9", chunk)[0] == "text"


def test_other_bodies_are_not_checked_and_malformed_forms_left_to_the_parser():
    assert FormTextCheck.for_content_type(b"application/json") is None
    assert FormTextCheck.for_content_type(None) is None
    assert FormTextCheck.for_content_type(b"multipart/form-data") is None  # no boundary: Starlette refuses it
    assert check(MULTIPART, b"garbage\xff without any boundary", 4) is None
