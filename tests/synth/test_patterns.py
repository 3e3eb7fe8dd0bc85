import numpy as np
from PIL import Image, ImageDraw

from cirlab.synth.nuisance import Nuisance
from cirlab.synth.patterns import STRIPE_PERIOD, paint_pattern
from cirlab.synth.placement import Placement

FABRIC, INK = (200, 40, 40), (250, 250, 250)
BOUNDS = (-1.0, -1.0, 1.0, 1.0)


def _paint(pattern, phase=(0.0, 0.0)):
    image = Image.new("RGB", (100, 100), FABRIC)
    place = Placement(scale=50.0, unit_centre=(0.0, 0.0), pixel_centre=(50.0, 50.0), angle=0.0)
    nuisance = Nuisance(0.0, 0.0, 1.0, 0.0, (0, 0, 0), phase, 11)
    paint_pattern(ImageDraw.Draw(image), pattern, BOUNDS, place, FABRIC, INK, nuisance)
    return image


def _ink_share(image):
    return float(np.all(np.asarray(image) == INK, axis=2).mean())


def test_solid_paints_nothing_and_stripes_cover_about_half():
    assert _ink_share(_paint("solid")) == 0
    assert 0.4 < _ink_share(_paint("striped")) < 0.7  # PIL fills polygon edges inclusively: a little over half


def test_stripes_are_horizontal_with_the_period():
    image = _paint("striped")
    column = [image.getpixel((50, y)) == INK for y in range(100)]
    assert all(image.getpixel((x, 20)) == image.getpixel((50, 20)) for x in range(100))  # rows are uniform
    starts = [y for y in range(1, 100) if column[y] and not column[y - 1]]
    assert abs((starts[1] - starts[0]) - STRIPE_PERIOD * 50) <= 1


def test_every_pattern_differs_and_phase_moves_it():
    images = {p: _paint(p).tobytes() for p in ("solid", "striped", "polka dot", "checked", "floral")}
    assert len(set(images.values())) == 5
    assert _paint("polka dot", (0.3, 0.6)).tobytes() != images["polka dot"]
    assert 0.05 < _ink_share(_paint("polka dot")) < 0.4
