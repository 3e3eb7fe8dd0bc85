from collections import Counter

import pytest

from cirlab.data.layout import SPLITS
from cirlab.synth.catalogue import (
    add_twins,
    assign_splits,
    build_catalogue,
    duplicate_count,
    mutate,
    random_garment,
    sample_families,
    twin_count,
)
from cirlab.synth.config import SynthConfig
from cirlab.synth.randomness import stream


@pytest.fixture(scope="module")
def items():
    return build_catalogue(SynthConfig.preset("tiny").with_overrides(images_per_category=120))


def test_counts_ids_and_categories(items):
    assert len(items) == 3 * 120
    assert Counter(i.category for i in items) == {"dress": 120, "shirt": 120, "toptee": 120}
    assert len({i.image_id for i in items}) == len(items)


def test_attributes_unique_per_category_except_duplicates(items):
    originals = [i for i in items if i.duplicate_of is None]
    keys = [(i.category, i.garment) for i in originals]
    assert len(set(keys)) == len(keys)


def test_duplicates_copy_their_original(items):
    by_id = {i.image_id: i for i in items}
    copies = [i for i in items if i.duplicate_of]
    assert len(copies) == 3 * duplicate_count(SynthConfig.preset("tiny").with_overrides(images_per_category=120))
    for copy in copies:
        original = by_id[copy.duplicate_of]
        assert original.duplicate_of is None
        assert (copy.garment, copy.nuisance, copy.split, copy.family) == (
            original.garment, original.nuisance, original.split, original.family)


def test_family_members_share_most_attributes(items):
    families: dict[tuple[str, int], list] = {}
    for item in items:
        if item.duplicate_of is None:
            families.setdefault((item.category, item.family), []).append(item.garment)
    for members in families.values():
        for a in members:
            for b in members:
                assert len(a.differences(b)) <= 4  # both within two attributes of the prototype
    # every family lies in one split
    splits = {(i.category, i.family): set() for i in items}
    for item in items:
        splits[(item.category, item.family)].add(item.split)
    assert all(len(s) == 1 for s in splits.values())


def test_splits_are_roughly_60_20_20(items):
    for category in ("dress", "shirt", "toptee"):
        counts = Counter(i.split for i in items if i.category == category)
        assert set(counts) == set(SPLITS)
        assert abs(counts["train"] / 120 - 0.6) < 0.1
        assert abs(counts["val"] / 120 - 0.2) < 0.07 and abs(counts["test"] / 120 - 0.2) < 0.07


def test_mutate_changes_one_or_two_attributes():
    rng = stream(0, "mutate")
    seen = Counter()
    for _ in range(300):
        garment = random_garment("shirt", rng)
        changed = garment.differences(mutate(garment, rng))
        assert 1 <= len(changed) <= 2
        seen[len(changed)] += 1
    assert seen[1] > seen[2] > 0


def test_sample_families_sizes_and_uniqueness():
    families = sample_families("dress", 50, (3, 5), stream(1, "families"))
    assert sum(len(f) for f in families) == 50
    assert all(3 <= len(f) <= 5 for f in families)
    flat = [g for f in families for g in f]
    assert len(set(flat)) == 50


def test_assign_splits_matches_a_naive_greedy_loop():
    sizes = [4, 7, 3, 5, 6, 3, 8, 4, 5, 3]
    fractions = (0.6, 0.2, 0.2)
    assigned = assign_splits(sizes, fractions, stream(2, "splits"))
    order = list(range(len(sizes)))
    stream(2, "splits").shuffle(order)
    counts, total, expected = {"train": 0, "val": 0, "test": 0}, 0, [None] * len(sizes)
    for position, family in enumerate(order):
        if position < 3:
            split = ["val", "test", "train"][position]
        else:
            best, split = None, None
            for index, name in enumerate(["train", "val", "test"]):
                deficit = fractions[index] * (total + sizes[family]) - counts[name]
                if best is None or deficit > best:
                    best, split = deficit, name
        expected[family] = split
        counts[split] += sizes[family]
        total += sizes[family]
    assert assigned == expected


def test_twins_repeat_a_garment_in_another_picture():
    config = SynthConfig.preset("tiny").with_overrides(images_per_category=120, ambiguity="high")
    items = build_catalogue(config)
    assert len(items) == 3 * 120 and twin_count(config) == 24 and twin_count(SynthConfig.preset("tiny")) == 0
    for category in ("dress", "shirt", "toptee"):
        originals = [i for i in items if i.category == category and i.duplicate_of is None]
        groups: dict = {}
        for item in originals:
            groups.setdefault(item.garment, []).append(item)
        twins = [g for g in groups.values() if len(g) > 1]
        assert len(twins) == twin_count(config) and all(len(g) == 2 for g in twins)
        for first, second in twins:
            assert (first.split, first.family) == (second.split, second.family)
            assert first.nuisance != second.nuisance


def test_add_twins_repeats_each_chosen_garment_once_in_place():
    families = sample_families("dress", 30, (3, 6), stream(0, "f"))
    twinned = add_twins(families, 5, stream(0, "t"))
    assert sum(map(len, twinned)) == 35
    # Each twin right after its garment: dropping repeats of the previous member gives the families back.
    assert [[g for k, g in enumerate(f) if k == 0 or f[k - 1] != g] for f in twinned] == families


def test_colourway_families_vary_only_in_hue():
    plain = sample_families("dress", 60, (3, 6), stream(0, "f"))
    assert sample_families("dress", 60, (3, 6), stream(0, "f"), (0.0, stream(0, "c"))) == plain
    for family in sample_families("dress", 60, (3, 6), stream(0, "f"), (1.0, stream(0, "c"))):
        assert all(member.differences(family[0]) == ["colour"] for member in family[1:])
        assert family[1].shade == family[0].shade
