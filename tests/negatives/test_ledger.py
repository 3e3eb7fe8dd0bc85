"""The negative ledger: bands, reference, category and true-false-negative counts against a naive loop, and shares."""

from __future__ import annotations

import math

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, Gallery, build_sampler
from cirlab.negatives.ledger import DEFAULT_LEDGER_MARGIN, LEDGER_STATS, TrueMatches, ledger_shares
from cirlab.negatives.window import TIE_TOLERANCE

from .conftest import near_target_queries

#: (sampler, options, k, progress): every strategy, each serving a mix of bands.
CASES = [
    ("random", {}, 120, 0.0),
    ("category", {}, 60, 0.0),
    ("semi-hard", {}, 12, 0.0),
    ("semi-hard", {"margin": 0.3, "distance": "euclidean"}, 12, 0.0),
    ("semi-hard", {"ledger_margin": 0.05}, 40, 0.0),
    ("hard", {}, 8, 0.0),
    ("hard", {"top_m": 20}, 8, 0.0),
    ("random", {"ledger_margin": 0.5}, 120, 0.0),
    ("curriculum", {"milestones": [0.3, 0.6], "ramp": 0.2}, 10, 0.5),
]


def _distance(name: str):
    if name == "euclidean":
        return lambda cosine: max(2.0 - 2.0 * cosine, 0.0) ** 0.5
    return lambda cosine: 1.0 - cosine


def _rule(gallery: Gallery, positives: torch.Tensor) -> TrueMatches:
    """Item ``i`` satisfies a query with target ``p`` when it has p's category and residue mod 5, and a residue
    mod 3 other than ``(p + 1) % 3``. Facets as bits: category (bits 0-2), i % 5 (bits 3-7), i % 3 (bits 8-10)."""
    items = torch.arange(len(gallery))
    item_bits = (1 << gallery.categories) | (1 << (3 + items % 5)) | (1 << (8 + items % 3))
    wanted = (1 << gallery.categories[positives]) | (1 << (3 + positives % 5))
    ruled_out = (0b11111111 & ~wanted) | (1 << (8 + (positives + 1) % 3))  # bits 0-7: category and i % 5
    return TrueMatches(item_bits, ruled_out)


def _naive_satisfies(gallery: Gallery, target: int, item: int) -> bool:
    return bool(gallery.categories[item] == gallery.categories[target]) and item % 5 == target % 5 \
        and item % 3 != (target + 1) % 3


def naive_ledger(gallery: Gallery, queries: torch.Tensor, positives: torch.Tensor, batch: BatchInfo,
                 negatives: torch.Tensor, margin: float, distance: str = "cosine") -> dict[str, float]:
    """The ledger's counters by an explicit loop over queries and their served negatives."""
    dist = _distance(distance)
    features, groups = gallery.features, gallery.duplicate_groups
    counts = dict.fromkeys(LEDGER_STATS, 0.0)
    for row, target in enumerate(positives.tolist()):
        target_cosine = float(queries[row] @ features[target])
        reference = -1 if batch.references is None else int(batch.references[row])
        for item in negatives[row].tolist():
            cosine = float(queries[row] @ features[item])
            if cosine >= target_cosine - TIE_TOLERANCE:
                counts["ledger_harder"] += 1
            elif dist(cosine) >= dist(target_cosine) + margin:
                counts["ledger_easier"] += 1
            else:
                counts["ledger_semi_hard"] += 1
            if reference >= 0 and (item == reference or (groups[reference] >= 0 and groups[item] == groups[reference])):
                counts["ledger_reference"] += 1
            counts["ledger_same_category"] += int(gallery.categories[item] == batch.categories[row])
            if batch.true_matches is not None:
                counts["ledger_with_ground_truth"] += 1
                counts["ledger_true_false_negatives"] += _naive_satisfies(gallery, target, item)
    return counts


def _queries(gallery):
    positives = torch.arange(20, 300, 9)
    return near_target_queries(gallery, positives, noise=0.25, seed=3), positives


def _references(gallery: Gallery, positives: torch.Tensor, served: torch.Tensor) -> torch.Tensor:
    """References that make every case count: a served negative, an exact copy of one, absent (-1), or other."""
    references = torch.randint(0, len(gallery), positives.shape, generator=torch.Generator().manual_seed(4))
    copies = 0
    for row in range(len(positives)):
        picks = served[row].tolist()
        duplicated = [item for item in picks if gallery.duplicate_groups[item] >= 0]
        if duplicated and copies < 3:
            references[row] = duplicated[0] ^ 1  # the other item of its exact pair (conftest: pairs 0-1, 2-3, ...)
            copies += 1
        elif row % 3 == 0:
            references[row] = picks[-1]
        elif row % 3 == 1:
            references[row] = -1
    return references


@pytest.mark.parametrize(("name", "options", "k", "progress"), CASES)
def test_ledger_equals_a_naive_loop_and_leaves_the_picks_alone(gallery, name, options, k, progress) -> None:
    queries, positives = _queries(gallery)
    categories = gallery.categories[positives]
    bare = build_sampler(name, gallery, **options)
    served = bare.sample(queries, positives, BatchInfo(categories, progress), k, torch.Generator().manual_seed(1))

    batch = BatchInfo(categories, progress, references=_references(gallery, positives, served),
                      true_matches=_rule(gallery, positives))
    sampler = build_sampler(name, gallery, **options)
    negatives = sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(1))
    assert torch.equal(negatives, served)  # the ledger only reads what was served

    stats = sampler.stats()
    margin = options.get("ledger_margin", options.get("margin", DEFAULT_LEDGER_MARGIN))
    expected = naive_ledger(gallery, queries, positives, batch, negatives, margin, options.get("distance", "cosine"))
    assert {key: stats[key] for key in LEDGER_STATS} == expected
    assert stats["ledger_harder"] + stats["ledger_semi_hard"] + stats["ledger_easier"] == stats["negatives"]
    assert stats["ledger_with_ground_truth"] == stats["negatives"]
    assert _without_ledger(stats) == _without_ledger(bare.stats())


def _without_ledger(stats: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in stats.items() if key.rsplit("/", 1)[-1] not in LEDGER_STATS}


def test_the_cases_cover_every_band_and_count(gallery) -> None:
    """The naive-loop cases above are not vacuous: together they see every band and every kind of hit."""
    seen = dict.fromkeys(LEDGER_STATS, 0.0)
    queries, positives = _queries(gallery)
    for name, options, k, progress in CASES:
        sampler = build_sampler(name, gallery, **options)
        generator = torch.Generator().manual_seed(1)
        served = build_sampler(name, gallery, **options).sample(
            queries, positives, BatchInfo(gallery.categories[positives], progress), k, torch.Generator().manual_seed(1))
        batch = BatchInfo(gallery.categories[positives], progress, _references(gallery, positives, served),
                          _rule(gallery, positives))
        sampler.sample(queries, positives, batch, k, generator)
        for key in LEDGER_STATS:
            seen[key] += sampler.stats()[key]
        if name == "hard" and not options:
            assert sampler.stats()["ledger_harder"] > 0
    assert all(value > 0 for value in seen.values()), seen


@pytest.mark.parametrize(("distance", "margin"), [("cosine", 0.2), ("euclidean", 0.3)])
def test_semi_hard_window_picks_are_exactly_its_semi_hard_band(gallery, distance: str, margin: float) -> None:
    queries, positives = _queries(gallery)
    sampler = build_sampler("semi-hard", gallery, margin=margin, distance=distance)
    sampler.sample(queries, positives, BatchInfo(gallery.categories[positives]), 6, torch.Generator().manual_seed(0))
    stats = sampler.stats()
    # Window picks are the semi-hard band; fallbacks come from beyond the window or closer than the target.
    assert stats["ledger_semi_hard"] == stats["negatives"] - stats["fallback_negatives"] > 0.9 * stats["negatives"]


def test_hard_negatives_are_harder_than_random_ones(gallery) -> None:
    queries, positives = _queries(gallery)
    shares = {}
    for name in ("random", "hard"):
        sampler = build_sampler(name, gallery)
        batch = BatchInfo(gallery.categories[positives])
        sampler.sample(queries, positives, batch, 8, torch.Generator().manual_seed(0))
        shares[name] = ledger_shares(sampler.stats())
    assert shares["hard"]["ledger_harder"] > shares["random"]["ledger_harder"]
    assert shares["hard"]["ledger_easier"] < shares["random"]["ledger_easier"]


def test_without_references_or_ground_truth_those_counters_stay_zero(gallery) -> None:
    queries, positives = _queries(gallery)
    sampler = build_sampler("random", gallery)
    sampler.sample(queries, positives, BatchInfo(gallery.categories[positives]), 50, torch.Generator().manual_seed(0))
    stats = sampler.stats()
    assert stats["ledger_reference"] == stats["ledger_true_false_negatives"] == stats["ledger_with_ground_truth"] == 0
    assert stats["ledger_same_category"] > 0
    assert "ledger_true_false_negatives" not in ledger_shares(stats)


#: Value bits of a hand-made gallery (facets category, colour, length; two values each): item 4 has item 0's
#: attributes, item 5 is unknown to the ground truth (bit 6, which every rule rules out).
CATEGORY, COLOUR, LENGTH, UNKNOWN = (0b1, 0b10), (0b100, 0b1000), (0b10000, 0b100000), 0b1000000
ITEM_BITS = torch.tensor([CATEGORY[0] | COLOUR[0] | LENGTH[0], CATEGORY[0] | COLOUR[0] | LENGTH[1],
                          CATEGORY[0] | COLOUR[1] | LENGTH[0], CATEGORY[1] | COLOUR[0] | LENGTH[0],
                          CATEGORY[0] | COLOUR[0] | LENGTH[0], UNKNOWN])
COLOUR_0_NOT_LENGTH_0 = UNKNOWN | CATEGORY[1] | COLOUR[1] | LENGTH[0]
ANY_COLOUR_LENGTH_0 = UNKNOWN | CATEGORY[1] | LENGTH[1]
CATEGORY_1_NOT_COLOUR_1 = UNKNOWN | CATEGORY[0] | COLOUR[1]


def test_true_matches_on_a_hand_made_gallery() -> None:
    rules = TrueMatches(ITEM_BITS, torch.tensor([COLOUR_0_NOT_LENGTH_0, ANY_COLOUR_LENGTH_0, CATEGORY_1_NOT_COLOUR_1]))
    assert rules.matches(torch.arange(6).expand(3, 6)).tolist() == [
        [False, True, False, False, False, False],
        [True, False, True, False, True, False],
        [False, False, False, True, False, False],
    ]
    assert rules.rows(torch.tensor([2, 0])).matches(torch.tensor([[3, 1], [1, 3]])).tolist() == [[True, False],
                                                                                                  [True, False]]
    with pytest.raises(ValueError, match="true matches"):
        TrueMatches(ITEM_BITS[:, None], rules.ruled_out)


def test_true_false_negatives_served_by_hard_mining_on_a_hand_made_gallery() -> None:
    # Unit vectors at these angles; query 0 sits on item 0 (its target), query 1 on item 1 (its target).
    angles = torch.tensor([0.0, 60.0, 20.0, 90.0, 10.0, 180.0]) * math.pi / 180
    gallery = Gallery.from_raw(torch.stack([angles.cos(), angles.sin()], dim=1), torch.tensor([0, 0, 0, 1, 0, 0]))
    rules = TrueMatches(ITEM_BITS, torch.tensor([ANY_COLOUR_LENGTH_0, COLOUR_0_NOT_LENGTH_0]))
    positives = torch.tensor([0, 1])
    sampler = build_sampler("hard", gallery, near_duplicate_threshold=None)  # item 4 is 10 degrees from item 0
    batch = BatchInfo(torch.tensor([0, 0]), references=torch.tensor([2, -1]), true_matches=rules)
    negatives = sampler.sample(gallery.features[positives], positives, batch, 2, torch.Generator())
    assert negatives.tolist() == [[4, 2], [3, 2]]  # the closest items to each query
    stats = sampler.stats()
    assert stats["ledger_true_false_negatives"] == 2 and stats["ledger_with_ground_truth"] == 4
    assert stats["ledger_reference"] == 1 and stats["ledger_same_category"] == 3
    # cosines with the query (= its target, cosine 1): 0.98, 0.94 | 0.87, 0.77 (beyond 1 - 0.2)
    assert (stats["ledger_harder"], stats["ledger_semi_hard"], stats["ledger_easier"]) == (0, 3, 1)
    assert ledger_shares(stats)["ledger_true_false_negatives"] == 0.5


def test_ledger_shares() -> None:
    stats = {"sampler/negatives": 200.0, "sampler/ledger_harder": 20.0, "sampler/ledger_semi_hard": 80.0,
             "sampler/ledger_easier": 100.0, "sampler/ledger_reference": 2.0, "sampler/ledger_same_category": 150.0,
             "sampler/guard_exact_duplicates": 4.0, "sampler/guard_near_duplicates": 0.0,
             "sampler/ledger_true_false_negatives": 5.0, "sampler/ledger_with_ground_truth": 100.0,
             "sampler/queries": 10.0}
    assert ledger_shares(stats, prefix="sampler/") == {
        "ledger_harder": 0.1, "ledger_semi_hard": 0.4, "ledger_easier": 0.5, "ledger_reference": 0.01,
        "ledger_same_category": 0.75, "guard_exact_duplicates": 0.02, "guard_near_duplicates": 0.0,
        "ledger_true_false_negatives": 0.05}
    no_truth = {**stats, "sampler/ledger_true_false_negatives": 0.0, "sampler/ledger_with_ground_truth": 0.0}
    assert "ledger_true_false_negatives" not in ledger_shares(no_truth, prefix="sampler/")
    assert ledger_shares(stats) == {}  # no unprefixed counters
    assert ledger_shares({"negatives": 0.0, "ledger_harder": 0.0}) == {}
    assert ledger_shares({"negatives": 4.0, "ledger_harder": 1.0}) == {"ledger_harder": 0.25}


def test_ledger_margin_option(gallery) -> None:
    assert build_sampler("random", gallery).ledger.margin == DEFAULT_LEDGER_MARGIN
    assert build_sampler("random", gallery).config()["ledger_margin"] is None
    assert build_sampler("hard", gallery, ledger_margin=0.3).ledger.margin == 0.3
    semi_hard = build_sampler("semi-hard", gallery, margin=0.4, distance="euclidean")
    assert semi_hard.ledger.margin == 0.4 and semi_hard.ledger.distance is semi_hard.distance
    assert build_sampler("semi-hard", gallery, margin=0.4, ledger_margin=0.1).ledger.margin == 0.1
    curriculum = build_sampler("curriculum", gallery, ledger_margin=0.3, stage_options={"semi-hard": {"margin": 0.5}})
    assert [stage.ledger.margin for stage in curriculum.stages] == [0.3, 0.3, 0.3]
    curriculum = build_sampler("curriculum", gallery, stage_options={"semi-hard": {"margin": 0.5}})
    assert [stage.ledger.margin for stage in curriculum.stages] == [0.2, 0.5, 0.2]
    for bad in (0, -0.1):
        with pytest.raises(ConfigError, match="negative sampler 'hard': ledger_margin must be positive"):
            build_sampler("hard", gallery, ledger_margin=bad)


def test_ledger_inputs_are_checked(gallery) -> None:
    queries, positives = _queries(gallery)
    sampler = build_sampler("random", gallery)
    categories = gallery.categories[positives]
    with pytest.raises(ValueError, match="batch.references must be"):
        sampler.sample(queries, positives, BatchInfo(categories, references=positives[:3]), 3, torch.Generator())
    rules = _rule(gallery, positives[:3])
    with pytest.raises(ValueError, match="batch.true_matches must hold one rule per query"):
        sampler.sample(queries, positives, BatchInfo(categories, true_matches=rules), 3, torch.Generator())
