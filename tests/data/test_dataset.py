"""The data set registry, layout recognition and the contract every reader keeps."""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path

import pytest

from cirlab.cli import main
from cirlab.data import (
    CIRR,
    DATASETS,
    DatasetReader,
    FashionIQ,
    caption_variants,
    dataset_class,
    detect_dataset,
    open_dataset,
)
from cirlab.errors import ConfigError, DataError
from tests.builders import make_fashioniq, write_json
from tests.data.cirr_builders import make_cirr

BUILDERS = {"fashioniq": make_fashioniq, "cirr": make_cirr}


def test_the_registry_holds_both_readers() -> None:
    assert DATASETS.names() == ["cirr", "fashioniq"]
    assert dataset_class("fashioniq") is FashionIQ and dataset_class("cirr") is CIRR
    assert dataset_class(None) is FashionIQ  # what a cache that names no data set was made from
    with pytest.raises(ConfigError, match="unknown data set 'coco'; known: cirr, fashioniq"):
        dataset_class("coco")


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_reader_keeps_the_contract(kind: str, tmp_path: Path) -> None:
    root = BUILDERS[kind](tmp_path / kind)
    dataset = open_dataset(root)
    assert isinstance(dataset, DatasetReader) and type(dataset) is dataset_class(kind) and dataset.kind == kind
    assert 0 <= dataset.eval_form_index < len(dataset.caption_forms)
    assert set(dataset.splits_with_targets) <= set(dataset.known_splits)
    assert dataset.splits() == list(dataset.known_splits)
    for category in dataset.categories:
        for split in dataset.splits():
            data = dataset.split_data(category, split)
            assert data.image_ids == dataset.image_ids(category, split) and data.triplets
            for triplet in data.triplets:
                texts = dataset.caption_texts(triplet.captions)
                assert len(texts) == len(dataset.caption_forms) and all(isinstance(t, str) for t in texts)
                assert dataset.image_path(triplet.reference) is not None
            assert dataset.has_targets(split) == all(t.target is not None for t in data.triplets)
    assert dataset.available_image_ids() == {i for c in dataset.categories for s in dataset.splits()
                                              for i in dataset.image_ids(c, s)}
    assert all(path.is_file() for path in dataset.annotation_files())
    assert all(folder.is_dir() and folder.is_relative_to(dataset.images_root) for folder in dataset.image_folders())


def test_fashioniq_caption_forms_are_the_four_training_forms(tmp_path: Path) -> None:
    dataset = FashionIQ(make_fashioniq(tmp_path / "fiq"))
    triplet = dataset.triplets("dress", "val")[0]
    assert dataset.caption_texts(triplet.captions) == caption_variants(triplet.captions)
    assert dataset.caption_forms == ("c1_and_c2", "c2_and_c1", "c1", "c2") and dataset.eval_form_index == 0
    assert (triplet.query_id, triplet.subset, triplet.soft_targets) == (None, (), ())


def test_has_targets_reads_a_split_that_may_withhold_them(tmp_path: Path) -> None:
    root = make_fashioniq(tmp_path / "fiq")
    assert not FashionIQ(root).has_targets("test")  # as FashionIQ's own test split
    for category in ("dress", "shirt"):  # the synthetic benchmark writes its test targets
        path = root / "captions" / f"cap.{category}.test.json"
        ids = [f"{category[0].upper()}test{n}" for n in range(6)]
        write_json(path, [{"candidate": a, "target": b, "captions": ["x", "y"]} for a, b in pairwise(ids)])
    assert FashionIQ(root).has_targets("test") and FashionIQ(root).has_targets("val")


def test_the_layout_is_recognised_or_named(tmp_path: Path) -> None:
    fiq, cirr = make_fashioniq(tmp_path / "fiq"), make_cirr(tmp_path / "cirr")
    assert (detect_dataset(fiq), detect_dataset(cirr), detect_dataset(tmp_path)) == ("fashioniq", "cirr", None)
    assert isinstance(open_dataset(cirr), CIRR) and isinstance(open_dataset(fiq, categories=["shirt"]), FashionIQ)
    assert open_dataset(fiq, categories=["shirt"]).categories == ("shirt",)
    assert isinstance(open_dataset(fiq, "fashioniq"), FashionIQ)
    with pytest.raises(DataError, match="cirr/image_splits: no split files found"):
        open_dataset(fiq, "cirr")  # named explicitly: read as that layout, whatever the folder holds


def test_a_folder_of_no_known_layout_names_the_files_of_each(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        open_dataset(tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path}: not a data set folder of a known layout")
    assert "cirr: cirr/captions/cap.rc2.<split>.json, cirr/image_splits/split.rc2.<split>.json" in message
    assert "fashioniq: images/<id>.jpg|.png, captions/cap.<category>.<split>.json" in message
    with pytest.raises(DataError, match="data set folder not found"):
        open_dataset(tmp_path / "nope")


def test_a_folder_with_both_layouts_asks_for_one(tmp_path: Path) -> None:
    root = make_fashioniq(tmp_path / "both")
    shutil.copytree(make_cirr(tmp_path / "cirr") / "cirr", root / "cirr")
    with pytest.raises(ConfigError, match="holds files of several data set layouts \\(cirr, fashioniq\\); name one "
                                          "with --dataset"):
        open_dataset(root)
    assert isinstance(open_dataset(root, "cirr"), CIRR)


def test_data_check_takes_the_layout_from_dataset(tmp_path: Path, capsys) -> None:
    root = make_fashioniq(tmp_path / "fiq")
    assert main(["data", "check", str(root), "--dataset", "fashioniq", "--no-images"]) == 0
    assert main(["data", "check", str(root), "--dataset", "cirr", "--no-images"]) == 1
    out = capsys.readouterr().out
    assert "(cirr layout)" in out and "no image_splits files found" in out
    with pytest.raises(SystemExit):
        main(["data", "check", str(root), "--dataset", "coco"])
    assert "invalid choice: 'coco'" in capsys.readouterr().err


def test_data_check_of_a_folder_of_no_known_layout(tmp_path: Path, capsys) -> None:
    assert main(["data", "check", str(tmp_path), "--no-images"]) == 1
    out = capsys.readouterr().out
    assert "not a data set folder of a known layout" in out and "no captions files found" in out
