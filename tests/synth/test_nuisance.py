import random

from cirlab.synth.nuisance import sample_nuisance


def test_nuisance_ranges_and_variety():
    rng = random.Random(0)
    draws = [sample_nuisance(rng) for _ in range(300)]
    assert all(-0.05 <= n.offset_x <= 0.05 and 0.84 <= n.scale <= 1.0 and -6 <= n.angle <= 6 for n in draws)
    assert all(min(n.background) >= 215 for n in draws)
    assert len({n.background for n in draws}) > 250
    data = draws[0].to_dict()
    assert isinstance(data["background"], list) and len(data["pattern_phase"]) == 2
