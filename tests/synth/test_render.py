import io

import numpy as np
import pytest
from PIL import Image

from cirlab.synth.colours import fabric_colour
from cirlab.synth.nuisance import Nuisance
from cirlab.synth.render import png_bytes, render_garment
from cirlab.synth.vocabulary import Garment

BACKGROUND = (240, 238, 236)
STILL = Nuisance(0.0, 0.0, 1.0, 0.0, BACKGROUND, (0.0, 0.0), 1)
DRESS = Garment("dress", "green", "medium", "solid", "short sleeves", "knee length", "crew neck")
TOP = Garment("toptee", "blue", "medium", "solid", "short sleeves", "hip length", "crew neck")


def _array(garment, nuisance=STILL, size=64):
    return np.asarray(render_garment(garment, nuisance, size))


def _garment_box(pixels):
    """Height / width of the pixels that differ from the background."""
    ys, xs = np.nonzero(np.any(pixels != BACKGROUND, axis=2))
    return (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1)


def test_image_size_mode_and_background_corners():
    image = render_garment(DRESS, STILL, 48)
    assert image.size == (48, 48) and image.mode == "RGB"
    pixels = np.asarray(image)
    for y, x in [(0, 0), (0, 47), (47, 0), (47, 47)]:
        assert tuple(pixels[y, x]) == BACKGROUND


def test_solid_fabric_is_the_most_common_garment_colour():
    pixels = _array(DRESS).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    ranked = [tuple(int(v) for v in colours[i]) for i in np.argsort(-counts)]
    assert ranked[0] == BACKGROUND
    assert ranked[1] == fabric_colour("green", "medium")


def test_png_bytes_are_deterministic_and_decode_back():
    first = png_bytes(render_garment(DRESS, STILL, 64))
    assert first == png_bytes(render_garment(DRESS, STILL, 64))
    decoded = np.asarray(Image.open(io.BytesIO(first)).convert("RGB"))
    assert np.array_equal(decoded, _array(DRESS))


def test_nuisance_changes_pixels_but_not_the_garment():
    moved = Nuisance(0.03, -0.02, 0.9, 4.0, (230, 240, 235), (0.5, 0.5), 2)
    assert not np.array_equal(_array(DRESS), _array(DRESS, moved))


@pytest.mark.parametrize("garment, attribute, values", [
    (DRESS, "length", ("mini length", "knee length", "maxi length")),
    (TOP, "length", ("cropped", "hip length", "tunic length")),
])
def test_longer_garments_are_visibly_taller(garment, attribute, values):
    ratios = [_garment_box(_array(garment.replace(attribute, v))) for v in values]
    assert ratios[0] < ratios[1] < ratios[2]


def test_long_sleeves_make_the_outline_wider_than_sleeveless():
    assert _garment_box(_array(TOP.replace("sleeves", "long sleeves"))) < _garment_box(
        _array(TOP.replace("sleeves", "sleeveless")))


def test_shade_and_colour_change_the_garment_pixels_accordingly():
    def mean_fabric(garment):
        pixels = _array(garment).reshape(-1, 3).astype(float)
        return pixels[np.any(pixels != BACKGROUND, axis=1)].mean(axis=0)

    light, dark = mean_fabric(DRESS.replace("shade", "light")), mean_fabric(DRESS.replace("shade", "dark"))
    assert light.sum() > mean_fabric(DRESS).sum() > dark.sum()
    red = mean_fabric(DRESS.replace("colour", "red"))
    assert red[0] > red[1] and mean_fabric(DRESS)[1] > mean_fabric(DRESS)[0]


def test_neckline_changes_only_the_upper_part():
    crew, vneck = _array(TOP), _array(TOP.replace("neckline", "v-neck"))
    rows = np.nonzero(np.any(crew != vneck, axis=(1, 2)))[0]
    assert rows.size > 0 and rows.max() < 32
