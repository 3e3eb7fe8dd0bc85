import io

import numpy as np
import pytest
from PIL import ExifTags, Image

from cirlab.data.images import ImageDecodeError, decode_image, load_image
from cirlab.data.transforms import TargetPad


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


def _encoded(image: Image.Image, fmt: str, **options) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    buffer.seek(0)
    return buffer


def _grey_of(image: Image.Image) -> np.ndarray:
    """The first channel of a decoded image, after checking that it is grey (all channels equal)."""
    pixels = np.asarray(image)
    assert image.mode == "RGB"
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all()
    return pixels[..., 0]


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white():
    values = np.array([[0, 128, 257, 32896, 65280, 65535]], dtype=np.uint16)
    source = _encoded(Image.fromarray(values), "PNG")
    assert Image.open(source).mode == "I;16"
    source.seek(0)
    assert _grey_of(decode_image(source)).tolist() == [[0, 0, 1, 128, 254, 255]]


def test_a_sixteen_bit_gradient_keeps_its_range():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    grey = _grey_of(decode_image(_encoded(Image.fromarray(ramp), "PNG")))
    assert grey.min() == 0 and grey.max() == 255
    assert np.abs(grey.astype(int) - np.rint(ramp / 257)).max() == 0
    assert (grey == 255).mean() < 0.05


def test_big_endian_sixteen_bit_grey():
    values = np.array([[0, 257, 65535]], dtype=">u2")
    source = _encoded(Image.fromarray(values), "TIFF")
    assert Image.open(source).mode == "I;16B"
    source.seek(0)
    assert _grey_of(decode_image(source)).tolist() == [[0, 1, 255]]


def test_32_bit_integer_grey_is_read_as_16_bit_samples_and_clipped():
    values = np.array([[-5, 0, 257, 32896, 65535, 70000]], dtype=np.int32)
    assert _grey_of(decode_image(_encoded(Image.fromarray(values), "TIFF"))).tolist() == [[0, 0, 1, 128, 255, 255]]


def test_float_grey_is_read_as_zero_to_one():
    values = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]], dtype=np.float32)
    source = _encoded(Image.fromarray(values), "TIFF")
    assert Image.open(source).mode == "F"
    source.seek(0)
    assert _grey_of(decode_image(source)).tolist() == [[0, 0, 128, 255, 255, 0]]


def test_palette_transparency_is_composited_over_white():
    image = Image.new("P", (2, 1))
    image.putpalette([200, 10, 10, 10, 10, 200] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    source = _encoded(image, "PNG", transparency=0)
    assert Image.open(source).info.get("transparency") == 0
    source.seek(0)
    assert np.asarray(decode_image(source)).tolist() == [[[255, 255, 255], [10, 10, 200]]]


def test_colour_key_transparency_of_an_rgb_png_is_composited_over_white():
    image = Image.new("RGB", (2, 1), (0, 0, 0))
    image.putpixel((1, 0), (30, 60, 90))
    pixels = np.asarray(decode_image(_encoded(image, "PNG", transparency=(0, 0, 0))))
    assert pixels.tolist() == [[[255, 255, 255], [30, 60, 90]]]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_over_white(mode):
    grey = mode == "LA"
    colour = (90,) if grey else (90, 40, 200)
    image = Image.new(mode, (3, 1))
    image.putpixel((0, 0), (*colour, 0))  # fully transparent: white whatever the colour
    image.putpixel((1, 0), (*colour, 255))  # opaque: the colour
    image.putpixel((2, 0), (0,) * len(colour) + (128,))  # half-transparent black: mid grey
    pixels = np.asarray(decode_image(_encoded(image, "PNG"))).astype(int)
    expected_colour = [90] * 3 if grey else [90, 40, 200]
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == expected_colour
    assert np.abs(pixels[0, 2] - 127).max() <= 1


def test_cmyk_takes_pil_conversion_and_pads_black():
    image = Image.new("CMYK", (16, 48), (0, 0, 0, 0))  # white
    image.paste((255, 0, 0, 0), (0, 16, 16, 32))  # cyan
    image.paste((0, 0, 0, 255), (0, 32, 16, 48))  # black
    source = _encoded(image, "JPEG", quality=100)
    assert Image.open(source).mode == "CMYK"
    source.seek(0)
    decoded = decode_image(source)
    pixels = np.asarray(decoded).astype(int)
    for row, expected in ((8, [255, 255, 255]), (24, [0, 255, 255]), (40, [0, 0, 0])):
        assert np.abs(pixels[row, 8] - expected).max() <= 3, (row, pixels[row, 8])
    padded = np.asarray(TargetPad(1.25)(decoded))
    assert padded.shape[1] > 16 and padded[:, 0].tolist() == [[0, 0, 0]] * padded.shape[0]


def _two_colour_jpeg(orientation: int | None) -> io.BytesIO:
    """A 32x16 JPEG, left half red and right half blue, with an EXIF orientation tag."""
    image = Image.new("RGB", (32, 16), (220, 20, 20))
    image.paste((20, 20, 220), (16, 0, 32, 16))
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    return _encoded(image, "JPEG", quality=95, exif=exif)


def _is_red(pixel) -> bool:
    return pixel[0] > 150 and pixel[2] < 80


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_two_colour_jpeg(6).getvalue())  # 6: shown turned 90 degrees clockwise
    for image in (decode_image(_two_colour_jpeg(6)), load_image(path)):
        pixels = np.asarray(image)
        assert image.size == (16, 32)
        assert _is_red(pixels[4, 8]) and not _is_red(pixels[28, 8])  # the left half is now on top


def test_without_an_orientation_tag_the_image_is_as_stored():
    for orientation in (None, 1):
        image = decode_image(_two_colour_jpeg(orientation))
        pixels = np.asarray(image)
        assert image.size == (32, 16)
        assert _is_red(pixels[8, 4]) and not _is_red(pixels[8, 28])
