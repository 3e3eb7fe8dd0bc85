import io

import pytest
from PIL import Image

from cirlab.data.images import ImageDecodeError, decode_image


def _png(size=(12, 10), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def _noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decodes_to_rgb_from_a_stream():
    image = decode_image(io.BytesIO(_png(mode="L")))
    assert image.mode == "RGB" and image.size == (12, 10)


@pytest.mark.parametrize(("data", "kwargs", "kind"), [
    (_png((50, 50)), {"max_pixels": 2499}, "too_large"),
    (_png((9000, 9000), mode="1"), {}, "too_large"),
    (b"not an image at all", {}, "unidentified"),
    (_noise_png()[: len(_noise_png()) // 2], {}, "corrupt"),
    (_png(), {"formats": ["JPEG"]}, "unidentified"),
])
def test_every_failure_has_its_kind(data, kwargs, kind):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(io.BytesIO(data), **kwargs)
    assert info.value.kind == kind
    assert "\n" not in str(info.value)
