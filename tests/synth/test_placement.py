import pytest

from cirlab.synth.nuisance import Nuisance
from cirlab.synth.placement import FILL, Placement
from cirlab.synth.shapes import silhouette
from cirlab.synth.vocabulary import Garment

STILL = Nuisance(0.0, 0.0, 1.0, 0.0, (240, 240, 240), (0.0, 0.0), 0)


def test_fit_fills_the_frame_along_the_larger_extent():
    shape = silhouette(Garment("dress", "red", "medium", "solid", "long sleeves", "maxi length", "v-neck"))
    place = Placement.fit(shape, STILL, 100)
    left, top, right, bottom = shape.bounds()
    corners = place.polygon([(left, top), (right, bottom)])
    assert corners[1][1] - corners[0][1] == pytest.approx(FILL * 100)
    assert (corners[0][0] + corners[1][0]) / 2 == pytest.approx(50)


def test_rotation_and_shift():
    place = Placement(scale=10.0, unit_centre=(0.0, 0.0), pixel_centre=(50.0, 40.0), angle=90.0)
    x, y = place.point((1.0, 0.0))
    assert (x, y) == (pytest.approx(50.0), pytest.approx(30.0))  # a quarter turn counter-clockwise on screen
    assert place.length(0.5) == 5.0
