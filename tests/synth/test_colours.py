from cirlab.synth.colours import fabric_colour, ink, luminance, mix
from cirlab.synth.vocabulary import COLOURS


def test_mix_endpoints_and_midpoint():
    assert mix((0, 0, 0), (255, 255, 255), 0.0) == (0, 0, 0)
    assert mix((0, 0, 0), (200, 100, 50), 0.5) == (100, 50, 25)


def test_shades_order_by_luminance_for_every_colour():
    for name in COLOURS:
        light, medium, dark = (luminance(fabric_colour(name, s)) for s in ("light", "medium", "dark"))
        assert light > medium > dark


def test_ink_contrasts_with_its_fabric():
    for name in COLOURS:
        for shade in ("light", "medium", "dark"):
            fabric = fabric_colour(name, shade)
            assert abs(luminance(ink(fabric)) - luminance(fabric)) > 50
