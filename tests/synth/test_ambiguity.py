"""Which gallery images satisfy a query, the recorded valid targets, and the share of ambiguous queries."""

from __future__ import annotations

import json

import pytest
import torch

from cirlab.synth import META_FILE, SynthConfig, generate
from cirlab.synth.ambiguity import AmbiguityCount, ambiguous_queries, left_open, satisfying_values, valid_targets
from cirlab.training.data import load_training_data
from tests.training.test_data import synthetic_cache

SMALL = SynthConfig.preset("tiny").with_overrides(images_per_category=120, size=32)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The small data set at each ambiguity level: level -> (root, meta)."""
    root = tmp_path_factory.mktemp("ambiguity")
    found = {}
    for level in ("default", "high"):
        generate(root / level, SMALL.with_overrides(ambiguity=level), show_progress=False)
        found[level] = root / level, json.loads((root / level / META_FILE).read_text())
    return found


def naive_valid_targets(meta, key, record):
    """Every image of the query's category and split with the target's value where the captions pin it or
    nothing changed, and not the reference's value where a change is left open."""
    category, split = key.split(".")
    reference, target = meta["images"][record["candidate"]], meta["images"][record["target"]]
    open_attributes = set(record["changed"]) - set(record["covered"])
    return sorted(i for i, image in meta["images"].items() if image["category"] == category and image["split"] == split
                  and all(image["attributes"][a] != reference["attributes"][a] if a in open_attributes
                          else image["attributes"][a] == target["attributes"][a] for a in meta["attributes"]))


def test_satisfying_values_pin_or_leave_open():
    vocabulary = {"colour": ["red", "blue", "green"], "shade": ["light", "medium", "dark"]}
    reference, target = {"colour": "red", "shade": "light"}, {"colour": "blue", "shade": "dark"}
    allowed = satisfying_values(vocabulary, reference, target, {"shade"})
    assert allowed == {"colour": {"blue"}, "shade": {"medium", "dark"}}
    assert left_open({"changed": ["colour", "shade"], "covered": ["colour"]}) == {"shade"}


@pytest.mark.parametrize("level", ["default", "high"])
def test_valid_targets_match_a_naive_check(outputs, level):
    _, meta = outputs[level]
    for key, records in meta["triplets"].items():
        for record, found in zip(records, valid_targets(meta, key)):
            assert found == naive_valid_targets(meta, key, record)
            assert record["target"] in found and record["candidate"] not in found


def test_high_level_records_every_valid_target(outputs):
    _, meta = outputs["high"]
    for key, records in meta["triplets"].items():
        assert [r["valid_targets"] for r in records] == valid_targets(meta, key)


def test_ambiguous_queries_count_other_valid_targets_and_copies_apart(outputs):
    _, meta = outputs["high"]
    copies = {i: g[0] for g in meta["duplicates"] for i in g}
    for split in ("train", "val"):
        counts = ambiguous_queries(meta, split)
        assert set(counts) == {"dress", "shirt", "toptee"}
        for category, count in counts.items():
            key = f"{category}.{split}"
            others = [[i for i in r["valid_targets"] if i != r["target"]] for r in meta["triplets"][key]]
            beyond = [[i for i in o if copies.get(i, i) != copies.get(r["target"], r["target"])]
                      for o, r in zip(others, meta["triplets"][key])]
            assert count == AmbiguityCount(len(others), sum(map(bool, others)), sum(map(bool, beyond)))


def test_high_ambiguity_makes_most_queries_ambiguous(outputs):
    for split in ("train", "val"):
        default = sum(ambiguous_queries(outputs["default"][1], split).values(), AmbiguityCount(0, 0, 0))
        high = sum(ambiguous_queries(outputs["high"][1], split).values(), AmbiguityCount(0, 0, 0))
        assert default.share < 0.1 and high.share_beyond_copies > 0.4


def test_the_ledger_counts_what_the_benchmark_records(outputs, tmp_path):
    """The training ground truth the negative ledger uses agrees with the recorded valid targets."""
    root, meta = outputs["high"]
    cache = synthetic_cache(tmp_path / "cache", root)
    data = load_training_data(cache, None, [0, 1, 2, 3], torch.device("cpu"))
    everything = torch.arange(len(data.gallery)).expand(len(data), -1)
    matches = data.true_matches.matches(everything)
    gallery_ids = [cache.image_ids[row] for row in data.gallery.rows.tolist()]
    table = cache.triplets
    for index, position in enumerate(data.positions.tolist()):
        record = meta["triplets"][f"{table.categories[position]}.train"][int(table.file_index[position])]
        assert sorted(gallery_ids[j] for j in matches[index].nonzero().flatten().tolist()) == record["valid_targets"]
