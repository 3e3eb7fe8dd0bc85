import io

import pytest
from PIL import Image

from cirlab.serve.validation import (
    RequestError,
    ServeLimits,
    check_category,
    check_image_id,
    check_k,
    check_text,
    decode_upload,
)


@pytest.mark.parametrize("image_id", ["B00006M009", "B0EPMJTXOM", "D000", "img_01-a.v2", "x"])
def test_plausible_ids_pass(image_id):
    assert check_image_id(image_id, "id") == image_id


@pytest.mark.parametrize("image_id", ["", "..", "a..b", ".hidden", "-flag", "a/b", "a\\b", "/abs", "%2e%2e",
                                      "a\x00b", "a b", "é", "a" * 129, "C:x"])
def test_implausible_ids_are_400(image_id):
    with pytest.raises(RequestError) as err:
        check_image_id(image_id, "reference_id")
    assert err.value.status == 400 and err.value.field == "reference_id"


def test_text_k_and_category_checks():
    limits = ServeLimits(max_k=5, default_k=3, max_text_chars=4)
    assert check_text("  abcd \n", limits) == "abcd"
    with pytest.raises(RequestError, match="5 characters, the limit is 4"):
        check_text("abcde", limits)
    with pytest.raises(RequestError, match="empty"):
        check_text(None, limits)
    assert check_k(None, limits) == 3 and check_k(5, limits) == 5
    with pytest.raises(RequestError, match="between 1 and 5, got 6"):
        check_k(6, limits)
    assert check_category("", ["dress"]) is None and check_category("dress", ["dress"]) == "dress"
    with pytest.raises(RequestError, match="unknown category 'Dress'; the gallery has dress"):
        check_category("Dress", ["dress"])


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_accepted_formats_decode_to_rgb(fmt):
    image = decode_upload(encoded(Image.new("RGB", (30, 20), (10, 200, 30)), fmt), ServeLimits())
    assert image.mode == "RGB" and image.size == (30, 20)


def test_other_formats_and_modes():
    rgba = decode_upload(encoded(Image.new("RGBA", (4, 4), (1, 2, 3, 0)), "PNG"), ServeLimits())
    assert rgba.mode == "RGB"
    with pytest.raises(RequestError, match="not an image in an accepted format"):
        decode_upload(encoded(Image.new("RGB", (4, 4)), "TIFF"), ServeLimits())
    with pytest.raises(RequestError, match="not an image in an accepted format"):
        decode_upload(encoded(Image.new("RGB", (4, 4)), "ICO"), ServeLimits())


def test_truncated_jpeg_is_400():
    data = encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(RequestError, match="cannot decode the image") as err:
        decode_upload(data[: len(data) // 2], ServeLimits())
    assert err.value.status == 400


def test_byte_and_pixel_limits():
    data = encoded(Image.new("RGB", (10, 10)), "PNG")
    with pytest.raises(RequestError) as err:
        decode_upload(data, ServeLimits(max_upload_bytes=len(data) - 1))
    assert err.value.status == 413
    assert decode_upload(data, ServeLimits(max_upload_bytes=len(data), max_upload_pixels=100)).size == (10, 10)
    with pytest.raises(RequestError, match="10x10 pixels, over the limit of 99 pixels"):
        decode_upload(data, ServeLimits(max_upload_pixels=99))
