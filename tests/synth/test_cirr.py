"""The synthetic benchmark in CIRR's layout: files, queries, subsets, soft targets, and the readers that take it."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from cirlab.cli import main
from cirlab.data import open_dataset
from cirlab.data.captions import eval_caption
from cirlab.data.cirr_layout import SPLITS, captions_file, split_file, tags_file
from cirlab.data.dataset import SINGLE_CATEGORY
from cirlab.errors import DataError
from cirlab.synth import META_FILE, SynthConfig, generate
from cirlab.synth.ambiguity import ambiguous_queries, valid_targets
from cirlab.synth.cirr import CIRR_SPLITS, SUBSET_SIZE

TINY_HIGH = SynthConfig.preset("tiny").with_overrides(ambiguity="high")


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _queries(root: Path, split: str) -> list[dict]:
    return _json(captions_file(root, split))


@pytest.fixture(scope="module")
def fashioniq_twin(tmp_path_factory) -> Path:
    """The same configuration in FashionIQ's layout."""
    root = tmp_path_factory.mktemp("twin") / "fiq"
    generate(root, TINY_HIGH, show_progress=False)
    return root


def test_files_sit_where_clip4cir_reads_them(tiny_cirr):
    root, summary = tiny_cirr
    for split in SPLITS:
        assert split_file(root, split).is_file() and captions_file(root, split).is_file()
        assert tags_file(root, split).is_file()
        folder = {"train": "./train/", "val": "./dev/", "test1": "./test1/"}[split]
        for name, relative in _json(split_file(root, split)).items():
            assert relative.startswith(folder) and relative.endswith(f"/{name}.png")
            assert (root / relative).is_file()
    train_folders = {Path(p).parent.name for p in _json(split_file(root, "train")).values()}
    assert train_folders == {"0"}  # 73 training images: one numbered folder of at most 100
    assert not (root / "images").exists() and not (root / "captions").exists()  # nothing of FashionIQ's layout
    assert summary.config.format == "cirr" and set(summary.images) == {f"all.{s}" for s in SPLITS}


def test_the_same_images_and_queries_as_the_fashioniq_layout(tiny_cirr, fashioniq_twin):
    root, summary = tiny_cirr
    twin = _json(fashioniq_twin / META_FILE)
    for fiq_split, split in CIRR_SPLITS.items():
        names = _json(split_file(root, split))
        twin_ids = {i for key in twin["counts"]["images"] if key.endswith(f".{fiq_split}")
                    for i in _json(fashioniq_twin / "image_splits" / f"split.{key}.json")}
        assert set(names) == twin_ids and summary.images[f"all.{split}"] == len(names)
        expected = Counter((entry["candidate"], entry["target"], eval_caption(entry["captions"]))
                           for key in twin["counts"]["triplets"] if key.endswith(f".{fiq_split}")
                           for entry in _json(fashioniq_twin / "captions" / f"cap.{key}.json"))
        found = Counter((q["reference"], r["target"], q["caption"])
                        for q, r in zip(_queries(root, split), _json(root / META_FILE)["triplets"][f"all.{split}"]))
        assert found == expected and sum(found.values()) == summary.triplets[f"all.{split}"]
        name = next(iter(names))
        assert (root / names[name]).read_bytes() == (fashioniq_twin / "images" / f"{name}.png").read_bytes()


def test_one_caption_joins_the_two(tiny_cirr):
    root, _ = tiny_cirr
    meta = _json(root / META_FILE)
    query = _queries(root, "val")[0]
    assert meta["triplets"]["all.val"][0]["pairid"] == query["pairid"]
    assert query["caption"][0].isupper() and " and " in query["caption"]


def test_every_reference_and_target_is_in_its_split(tiny_cirr):
    root, _ = tiny_cirr
    for split in SPLITS:
        names = set(_json(split_file(root, split)))
        for query in _queries(root, split):
            assert query["reference"] in names and set(query["img_set"]["members"]) <= names
            if split != "test1":
                assert query["target_hard"] in names and query["target_hard"] != query["reference"]


def test_pairids_number_the_whole_data_set_like_cirr(tiny_cirr):
    root, _ = tiny_cirr
    ids = {split: [q["pairid"] for q in _queries(root, split)] for split in SPLITS}
    everything = [i for split in SPLITS for i in ids[split]]
    assert sorted(everything) == list(range(len(everything)))  # unique over the splits, no gaps overall
    assert all(ids[s] == sorted(ids[s]) for s in SPLITS)  # each file in increasing pairid
    assert min(ids["train"]) < max(ids["val"]) and min(ids["val"]) < max(ids["train"])  # interleaved


def test_an_img_set_holds_six_similar_images_with_the_reference_and_the_target(tiny_cirr):
    root, _ = tiny_cirr
    meta = _json(root / META_FILE)
    copies = {name: set(group) for group in meta["duplicates"] for name in group}
    garment = {name: record["attributes"]["garment"] for name, record in meta["images"].items()}
    for split in SPLITS:
        by_id: dict[int, list[str]] = {}
        for query, record in zip(_queries(root, split), meta["triplets"][f"all.{split}"]):
            img_set, target = query["img_set"], record["target"]
            members = img_set["members"]
            assert len(members) == len(set(members)) == SUBSET_SIZE
            assert members[img_set["reference_rank"]] == query["reference"]
            assert target in members and img_set.get("target_rank", members.index(target)) == members.index(target)
            others = set(members) - {query["reference"], target}
            assert not others & (copies.get(target, set()) | copies.get(query["reference"], set()))
            assert all(garment[name] == garment[target] for name in others)  # enough of each garment here
            assert by_id.setdefault(img_set["id"], members) == members  # one id, one set, one order
    assert len({tuple(q["img_set"]["members"]) for q in _queries(root, "val")}) > 1


def test_target_soft_is_the_ground_truth(tiny_cirr):
    root, _ = tiny_cirr
    meta = _json(root / META_FILE)
    copies = {name: set(group) for group in meta["duplicates"] for name in group}
    seen = Counter()
    for split in ("train", "val"):
        recomputed = valid_targets(meta, f"all.{split}")
        for query, record, satisfying in zip(_queries(root, split), meta["triplets"][f"all.{split}"], recomputed):
            soft, target = query["target_soft"], query["target_hard"]
            assert record["valid_targets"] == satisfying and target == record["target"]
            assert soft[target] == 1.0 and next(iter(soft)) == target
            assert {name for name, score in soft.items() if score > 0} == set(satisfying)
            for name, score in soft.items():
                seen[score] += 1
                if score == 1.0:
                    assert name in copies.get(target, {target})
                if score < 0:
                    assert name in query["img_set"]["members"] and name != query["reference"]
            assert {n for n in query["img_set"]["members"] if n not in soft} == {query["reference"]}
    assert seen[0.5] > 0 and seen[-1.0] > 0  # the high ambiguity has queries that other images satisfy


def test_satisfying_images_are_those_of_the_fashioniq_layout(tiny_cirr, fashioniq_twin):
    """One category with the garment as an attribute gives the same valid targets as one gallery per category."""
    root, _ = tiny_cirr
    meta, twin = _json(root / META_FILE), _json(fashioniq_twin / META_FILE)
    for fiq_split, split in CIRR_SPLITS.items():
        expected = {(r["candidate"], r["target"]): r["valid_targets"]
                    for key, records in twin["triplets"].items() if key.endswith(f".{fiq_split}") for r in records}
        found = {(r["candidate"], r["target"]): r["valid_targets"] for r in meta["triplets"][f"all.{split}"]}
        assert found == expected
    assert set(ambiguous_queries(meta, "val")) == {SINGLE_CATEGORY}


def test_test1_withholds_its_targets(tiny_cirr):
    root, _ = tiny_cirr
    for query in _queries(root, "test1"):
        assert {"target_hard", "target_soft"}.isdisjoint(query) and "target_rank" not in query["img_set"]
    assert all("target" in r for r in _json(root / META_FILE)["triplets"]["all.test1"])  # the ground truth keeps them


def test_the_cirr_reader_opens_it(tiny_cirr):
    root, summary = tiny_cirr
    dataset = open_dataset(root)
    assert dataset.kind == "cirr" and dataset.splits() == list(SPLITS)
    assert dataset.has_targets("val") and not dataset.has_targets("test1")
    val = dataset.triplets(SINGLE_CATEGORY, "val")
    assert len(val) == summary.triplets["all.val"] and len(val[0].subset) == SUBSET_SIZE
    assert val[0].captions == (_queries(root, "val")[0]["caption"],) and val[0].soft_targets[0] == (val[0].target, 1.0)
    tags = dataset.tags(SINGLE_CATEGORY, "train")
    assert tags is not None and set(tags) == set(dataset.image_ids(SINGLE_CATEGORY, "train"))
    assert tags_file(root, "train") in dataset.annotation_files()
    assert dataset.split_data(SINGLE_CATEGORY, "train").missing_images == []


def test_data_check_passes(tiny_cirr, capsys):
    root, _ = tiny_cirr
    assert main(["data", "check", str(root)]) == 0
    assert "cirr layout" in capsys.readouterr().out


def test_a_rerun_is_recognised_and_another_layout_refused(tiny_cirr):
    root, _ = tiny_cirr
    before = hashlib.sha256((root / META_FILE).read_bytes()).hexdigest()
    assert generate(root, TINY_HIGH.with_overrides(format="cirr"), show_progress=False).reused
    assert hashlib.sha256((root / META_FILE).read_bytes()).hexdigest() == before
    with pytest.raises(DataError, match="format 'cirr' \\(asked 'fashioniq'\\)"):
        generate(root, TINY_HIGH, show_progress=False)


def test_the_same_configuration_gives_the_same_bytes(tiny_cirr, tmp_path):
    root, _ = tiny_cirr
    again = tmp_path / "again"
    generate(again, TINY_HIGH.with_overrides(format="cirr"), show_progress=False)
    for split in SPLITS:
        assert captions_file(again, split).read_bytes() == captions_file(root, split).read_bytes()
    assert (again / META_FILE).read_bytes() == (root / META_FILE).read_bytes()


def test_a_missing_file_makes_the_output_incomplete(tmp_path):
    out = tmp_path / "cirr"
    config = SynthConfig.preset("tiny").with_overrides(format="cirr", images_per_category=20)
    generate(out, config, show_progress=False)
    image = out / next(iter(_json(split_file(out, "val")).values()))
    image.unlink()
    summary = generate(out, config, show_progress=False)
    assert not summary.reused and image.is_file()


def test_cli_writes_the_cirr_layout(tmp_path, capsys):
    out = tmp_path / "cirr"
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--format", "cirr", "--images-per-category", "20",
                 "--preview", str(tmp_path / "preview.png")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("synthetic CIRR data set") and "\ntest1 " in printed
    assert (tmp_path / "preview.png").is_file()
    assert _json(out / META_FILE)["config"]["format"] == "cirr"


def test_a_cirr_folder_without_tag_files_has_no_tags(tiny_cirr, tmp_path):
    root, _ = tiny_cirr
    plain = tmp_path / "plain"
    for split in SPLITS:  # the annotation files alone, as real CIRR ships them
        for path in (split_file(root, split), captions_file(root, split)):
            target = plain / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    dataset = open_dataset(plain)
    assert dataset.kind == "cirr" and dataset.tags(SINGLE_CATEGORY, "train") is None
    assert not any("tags" in path.parts for path in dataset.annotation_files())
