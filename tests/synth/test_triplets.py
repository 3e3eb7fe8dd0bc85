from collections import Counter

from cirlab.synth.catalogue import build_catalogue
from cirlab.synth.config import SynthConfig
from cirlab.synth.randomness import stream
from cirlab.synth.triplets import MAX_DIFFERENCES, MIN_DIFFERENCES, sample_pairs


def _split_items(category="dress", split="train"):
    items = build_catalogue(SynthConfig.preset("tiny").with_overrides(images_per_category=150))
    return [i for i in items if i.category == category and i.split == split]


def test_pairs_differ_in_one_to_three_attributes_within_the_given_items():
    members = _split_items()
    pairs = sample_pairs(members, 2.0, stream(0, "triplets"))
    ids = {i.image_id for i in members}
    for pair in pairs:
        assert pair.reference.image_id in ids and pair.target.image_id in ids
        assert pair.changed == tuple(pair.reference.garment.differences(pair.target.garment))
        assert MIN_DIFFERENCES <= len(pair.changed) <= MAX_DIFFERENCES


def test_each_reference_gets_its_count_of_distinct_targets():
    members = _split_items()
    pairs = sample_pairs(members, 2.0, stream(0, "triplets"))
    # naive candidate count per reference: images differing in 1..3 attributes
    candidates = {a.image_id: sum(1 for b in members if 1 <= len(a.garment.differences(b.garment)) <= 3)
                  for a in members}
    per_reference = Counter(p.reference.image_id for p in pairs)
    for image_id, available in candidates.items():
        assert per_reference[image_id] == min(2, available)
    assert len({(p.reference.image_id, p.target.image_id) for p in pairs}) == len(pairs)


def test_fractional_rate_and_difference_mix():
    members = _split_items(split="train")
    pairs = sample_pairs(members, 1.5, stream(1, "triplets"))
    assert 1.2 * len(members) < len(pairs) < 1.8 * len(members)
    sizes = Counter(len(p.changed) for p in pairs)
    assert all(sizes[k] > 0 for k in (1, 2, 3))


def test_determinism_and_degenerate_input():
    members = _split_items(split="val")
    first = sample_pairs(members, 1.0, stream(3, "t"))
    second = sample_pairs(members, 1.0, stream(3, "t"))
    assert [(p.reference.image_id, p.target.image_id) for p in first] == [
        (p.reference.image_id, p.target.image_id) for p in second]
    assert sample_pairs(members[:1], 2.0, stream(3, "t")) == []
