import pytest

from cirlab.synth.shapes import NECK_DEPTHS, silhouette
from cirlab.synth.vocabulary import Garment

DRESS = Garment("dress", "blue", "medium", "solid", "short sleeves", "knee length", "crew neck")
SHIRT = Garment("shirt", "blue", "medium", "solid", "short sleeves", "hip length", "collar")
TOP = Garment("toptee", "blue", "medium", "solid", "short sleeves", "hip length", "crew neck")


def _height(g):
    bounds = silhouette(g).bounds()
    return bounds[3] - bounds[1]


def _width(g):
    bounds = silhouette(g).bounds()
    return bounds[2] - bounds[0]


@pytest.mark.parametrize("garment, lengths", [
    (DRESS, ("mini length", "knee length", "maxi length")),
    (SHIRT, ("cropped", "hip length", "tunic length")),
    (TOP, ("cropped", "hip length", "tunic length")),
])
def test_length_values_give_increasing_heights(garment, lengths):
    heights = [_height(garment.replace("length", v)) for v in lengths]
    assert heights == sorted(heights) and len(set(heights)) == 3


def test_sleeves_reach_further_when_longer():
    dress = [silhouette(DRESS.replace("sleeves", v)) for v in ("sleeveless", "short sleeves", "long sleeves")]
    assert [len(s.sleeves) for s in dress] == [0, 2, 2]
    lowest = [max(y for poly in s.sleeves for _, y in poly) for s in dress[1:]]
    assert lowest[0] < lowest[1]
    assert _width(DRESS.replace("sleeves", "sleeveless")) < _width(DRESS.replace("sleeves", "long sleeves"))


def test_category_details():
    shirt, top, dress = silhouette(SHIRT), silhouette(TOP), silhouette(DRESS)
    assert shirt.buttons and not top.buttons and not dress.buttons  # the shirt's placket
    assert len(shirt.collar) == 3 and not top.collar
    assert _width(SHIRT) > _width(TOP)  # square, broader shoulders


def test_neckline_openings_reach_their_depth():
    for neckline, depth in NECK_DEPTHS.items():
        shape = silhouette(TOP.replace("neckline", neckline))
        assert max(y for _, y in shape.opening) == pytest.approx(depth)
        assert bool(shape.collar) == (neckline == "collar")
