import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cirlab.data import FashionIQ, check_dataset
from cirlab.data.layout import CATEGORIES, SPLITS
from cirlab.errors import DataError
from cirlab.synth import META_FILE, SynthConfig, generate
from cirlab.synth.ids import is_asin_like
from cirlab.synth.output import PARTIAL_FILE
from cirlab.synth.vocabulary import Garment

TINY = SynthConfig.preset("tiny")


def _digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _meta(root: Path) -> dict:
    return json.loads((root / META_FILE).read_text())


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tiny_synth, tmp_path):
    root, _ = tiny_synth
    again = tmp_path / "again"
    generate(again, TINY, show_progress=False)
    assert _digest_tree(again) == _digest_tree(root)
    other = tmp_path / "other"
    generate(other, TINY.with_overrides(seed=1), show_progress=False)
    first, second = _digest_tree(root), _digest_tree(other)
    assert set(first) != set(second)  # other ids
    assert (root / "captions/cap.dress.val.json").read_bytes() != (other / "captions/cap.dress.val.json").read_bytes()


def test_output_does_not_depend_on_the_process(tiny_synth, tmp_path):
    root, _ = tiny_synth
    out = tmp_path / "elsewhere"
    code = ("import sys; from cirlab.synth import SynthConfig, generate; "
            "generate(sys.argv[1], SynthConfig.preset('tiny'), show_progress=False)")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env)
    assert _digest_tree(out) == _digest_tree(root)


def test_layout_reads_cleanly(tiny_synth):
    root, summary = tiny_synth
    report = check_dataset(root)
    assert report.ok, report.format()
    dataset = FashionIQ(root)
    assert dataset.categories == CATEGORIES and dataset.splits() == list(SPLITS)
    all_ids = []
    for category in CATEGORIES:
        for split in SPLITS:
            ids = dataset.image_ids(category, split)
            all_ids += ids
            assert len(ids) == summary.images[f"{category}.{split}"]
            assert len(dataset.triplets(category, split)) == summary.triplets[f"{category}.{split}"] > 0
            dataset.split_data(category, split)  # no missing images
            tags = dataset.tags(category, split)
            assert set(tags) == set(ids) and all(len(t) == 5 for t in tags.values())
    assert len(all_ids) == len(set(all_ids)) == 120  # every image in exactly one split
    assert all(is_asin_like(i) for i in all_ids)
    assert sorted(p.stem for p in (root / "images").iterdir()) == sorted(all_ids)
    assert all(p.suffix == ".png" for p in (root / "images").iterdir())


def test_triplets_stay_in_split_and_change_one_to_three_attributes(tiny_synth):
    root, _ = tiny_synth
    dataset, meta = FashionIQ(root), _meta(root)
    images = meta["images"]
    for category in CATEGORIES:
        for split in SPLITS:
            split_ids = set(dataset.image_ids(category, split))
            records = meta["triplets"][f"{category}.{split}"]
            triplets = dataset.triplets(category, split)
            assert len(records) == len(triplets)
            for triplet, record in zip(triplets, records):
                assert triplet.reference == record["candidate"]
                assert triplet.target == record["target"]
                target = record["target"]
                assert {triplet.reference, target} <= split_ids
                assert images[triplet.reference]["category"] == images[target]["category"] == category
                ref = Garment.from_dict(category, images[triplet.reference]["attributes"])
                tgt = Garment.from_dict(category, images[target]["attributes"])
                assert ref.differences(tgt) == record["changed"] and 1 <= len(record["changed"]) <= 3
                assert all(c.strip() and c == c.lower() for c in triplet.captions)


def test_every_split_has_targets_so_test_can_be_evaluated(tiny_synth):
    root, _ = tiny_synth
    for category in CATEGORIES:
        for split in ("train", "val", "test"):
            entries = json.loads((root / f"captions/cap.{category}.{split}.json").read_text())
            assert entries and all(set(e) == {"target", "candidate", "captions"} for e in entries)


def test_duplicates_are_byte_identical_listed_and_share_a_split(tiny_synth):
    root, summary = tiny_synth
    meta = _meta(root)
    assert meta["duplicates"] == summary.duplicates and len(summary.duplicates) == 3
    listed = {i for group in meta["duplicates"] for i in group}
    for group in meta["duplicates"]:
        data = {(root / "images" / f"{i}.png").read_bytes() for i in group}
        assert len(data) == 1
        assert len({meta["images"][i]["split"] for i in group}) == 1
        assert all(meta["images"][i]["duplicate_of"] == group[0] for i in group[1:])
    # no other two images are byte-identical
    digests = Counter(hashlib.sha256(p.read_bytes()).digest() for p in (root / "images").iterdir()
                      if p.stem not in listed)
    assert max(digests.values()) == 1


def test_meta_records_config_vocabulary_and_attributes(tiny_synth):
    root, _ = tiny_synth
    meta = _meta(root)
    assert meta["config"] == TINY.to_dict() and meta["version"] >= 1
    assert meta["tag_order"] == ["colour", "pattern", "sleeves", "length", "neckline"]
    assert set(meta["vocabulary"]) == set(CATEGORIES) and len(meta["vocabulary"]["dress"]["colour"]) >= 12
    tags = {}
    for category in CATEGORIES:
        for split in SPLITS:
            tags.update(json.loads((root / f"tags/asin2attr.{category}.{split}.json").read_text()))
    assert set(meta["images"]) == set(tags)
    for image_id, record in meta["images"].items():
        assert Garment.from_dict(record["category"], record["attributes"]).tags() == tags[image_id]


def test_split_sizes_follow_the_fractions(tiny_synth):
    _, summary = tiny_synth
    for category in CATEGORIES:
        train, val, test = (summary.images[f"{category}.{s}"] for s in SPLITS)
        assert train + val + test == 40
        assert 18 <= train <= 30 and 4 <= val <= 12 and 4 <= test <= 12
        assert summary.triplets[f"{category}.train"] >= 1.5 * train  # a couple per train image
        assert summary.triplets[f"{category}.val"] >= 0.8 * val


def test_rerun_over_complete_output_is_a_no_op(tiny_synth):
    root, _ = tiny_synth
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    summary = generate(root, TINY, show_progress=False)
    assert summary.reused
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_interrupted_run_is_completed_by_a_rerun(tiny_synth, tmp_path):
    root, _ = tiny_synth
    partial = tmp_path / "partial"
    generate(partial, TINY, show_progress=False)
    # simulate a run killed before the end: no meta, marker present, a truncated image
    (partial / META_FILE).rename(partial / PARTIAL_FILE)
    victim = next((partial / "images").iterdir())
    victim.write_bytes(victim.read_bytes()[:20])
    summary = generate(partial, TINY, show_progress=False)
    assert not summary.reused
    assert not (partial / PARTIAL_FILE).exists()
    assert _digest_tree(partial) == _digest_tree(root)


def test_refuses_foreign_folder_and_other_config(tiny_synth, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds no 'cirlab synth' output"):
        generate(tmp_path, TINY, show_progress=False)
    assert os.listdir(tmp_path) == ["notes.txt"]
    root, _ = tiny_synth
    with pytest.raises(DataError, match="another configuration"):
        generate(root, TINY.with_overrides(images_per_category=50), show_progress=False)


def test_summary_format_mentions_counts(tiny_synth):
    _, summary = tiny_synth
    text = summary.format()
    assert "dress.train" in text and "exact duplicates: 3 groups (6 images)" in text
    assert summary.total_images == 120
    assert sum(summary.changed_attributes.values()) == sum(summary.triplets.values())


def test_single_category_config(tmp_path):
    summary = generate(tmp_path / "one", TINY.with_overrides(categories=("shirt",), images_per_category=20),
                       show_progress=False)
    assert set(summary.images) == {"shirt.train", "shirt.val", "shirt.test"}
    assert check_dataset(tmp_path / "one").ok
    assert FashionIQ(tmp_path / "one").categories == ("shirt",)


#: Digest of every JSON file (captions, splits, tags, synth_meta.json) of the tiny preset at the default
#: ambiguity, as written before the ambiguity setting existed. The images are a function of the attributes
#: and nuisance recorded in synth_meta.json, so an unchanged digest means an unchanged benchmark.
TINY_DEFAULT_JSON_DIGEST = "e5b5feaa3457c00e6dc0ac7d72e662ab41ec863655ea71e625fc840fbabda44d"


def test_the_default_benchmark_is_written_as_before(tiny_synth):
    root, _ = tiny_synth
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.json")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    assert digest.hexdigest() == TINY_DEFAULT_JSON_DIGEST
    meta = _meta(root)
    assert "ambiguity" not in meta["config"] and "ambiguity_level" not in meta
    assert all("valid_targets" not in r for records in meta["triplets"].values() for r in records)


def test_another_ambiguity_is_another_configuration(tiny_synth, tmp_path):
    root, _ = tiny_synth
    with pytest.raises(DataError, match="ambiguity 'default' \\(asked 'high'\\)"):
        generate(root, TINY.with_overrides(ambiguity="high"), show_progress=False)
    out = tmp_path / "high"
    generate(out, TINY.with_overrides(ambiguity="high"), show_progress=False)
    meta = _meta(out)
    assert meta["config"]["ambiguity"] == "high"
    assert meta["ambiguity_level"] == {"twin_fraction": 0.25, "vague_fraction": 0.7, "colourway_fraction": 0.6}
    assert check_dataset(out).ok
    retuned = {**meta, "ambiguity_level": {**meta["ambiguity_level"], "twin_fraction": 0.1}}
    (out / META_FILE).write_text(json.dumps(retuned))
    with pytest.raises(DataError, match="ambiguity 'high' as it was defined then"):
        generate(out, TINY.with_overrides(ambiguity="high"), show_progress=False)


def test_summary_reports_the_share_of_ambiguous_queries_per_split(tiny_synth):
    _, summary = tiny_synth
    assert list(summary.ambiguity) == list(SPLITS)
    assert sum(count.queries for count in summary.ambiguity.values()) == sum(summary.triplets.values())
    assert "queries that another gallery image satisfies" in summary.format()
