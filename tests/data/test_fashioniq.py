import json

import pytest

from cirlab.data import CATEGORIES, SPLITS, FashionIQ, MissingPolicy, MissingReport
from cirlab.errors import ConfigError, DataError, MissingImagesError
from tests.builders import make_fashioniq

REAL_COUNTS = {
    ("dress", "train"): (5985, 11452), ("dress", "val"): (2017, 3817), ("dress", "test"): (2024, 3818),
    ("shirt", "train"): (5988, 19036), ("shirt", "val"): (2038, 6346), ("shirt", "test"): (2038, 6346),
    ("toptee", "train"): (6027, 16121), ("toptee", "val"): (1961, 5373), ("toptee", "test"): (2056, 5374),
}


def test_real_files_counts(real_fashioniq):
    dataset = FashionIQ(real_fashioniq)
    assert dataset.categories == CATEGORIES
    assert dataset.splits() == list(SPLITS)
    distinct = set()
    for (category, split), (n_triplets, n_images) in REAL_COUNTS.items():
        assert len(dataset.triplets(category, split)) == n_triplets
        ids = dataset.image_ids(category, split)
        assert len(ids) == n_images
        distinct.update(ids)
    assert len(distinct) == 74381


def test_real_test_split_has_no_targets_and_val_has_all(real_fashioniq):
    dataset = FashionIQ(real_fashioniq)
    for category in CATEGORIES:
        assert all(t.target is None for t in dataset.triplets(category, "test"))
        val_ids = set(dataset.image_ids(category, "val"))
        for t in dataset.triplets(category, "val"):
            assert t.target is not None
            assert t.reference in val_ids and t.target in val_ids


def test_real_empty_captions_are_kept(real_fashioniq):
    dataset = FashionIQ(real_fashioniq)
    empty = [t for c in CATEGORIES for s in SPLITS for t in dataset.triplets(c, s) if any(not x for x in t.captions)]
    assert len(empty) == 16
    shirt_val = {(t.reference, t.target): t for t in dataset.triplets("shirt", "val")}
    example = shirt_val[("B005PQ02G6", "B008D6Q7DC")]
    assert example.captions == ("", "is grey with a design on the back")


def test_triplet_records_point_back_to_their_file(tmp_path):
    dataset = FashionIQ(make_fashioniq(tmp_path))
    triplets = dataset.triplets("shirt", "train")
    raw = json.loads((tmp_path / "captions" / "cap.shirt.train.json").read_text())
    for t in triplets:
        assert raw[t.index]["candidate"] == t.reference and raw[t.index]["target"] == t.target
        assert t.category == "shirt" and t.split == "train"


def test_hand_made_jpg_fixture_reads(tmp_path):
    dataset = FashionIQ(make_fashioniq(tmp_path, ext=".jpg"))
    assert dataset.categories == ("dress", "shirt")
    assert dataset.image_path("Dval0").suffix == ".jpg"
    data = dataset.split_data("dress", "val")
    assert len(data.image_ids) == 6 and len(data.triplets) == 5 and not data.missing_images
    assert dataset.tags("dress", "val")["Dval1"] == ["colour", "1", "plain"]


def test_png_and_categories_argument(tmp_path):
    dataset = FashionIQ(make_fashioniq(tmp_path, ext=".png"), categories=["shirt"])
    assert dataset.categories == ("shirt",)
    assert dataset.image_path("Strain3").suffix == ".png"
    with pytest.raises(ConfigError, match="unknown categories"):
        FashionIQ(tmp_path, categories=["hat"])


def test_missing_images_error_policy_counts_them(tmp_path):
    root = make_fashioniq(tmp_path)
    (root / "images" / "Dval2.jpg").unlink()
    dataset = FashionIQ(root)
    with pytest.raises(MissingImagesError) as info:
        dataset.split_data("dress", "val")
    message = str(info.value)
    assert "1 images of dress/val are missing" in message and "Dval2" in message
    assert "pass --missing skip" in message  # the flag that leaves them out, not an internal policy name
    assert "affecting 2 of 5 triplets" in message and "\n" not in message


def test_missing_images_skip_policy_reports_and_drops(tmp_path):
    root = make_fashioniq(tmp_path)
    for name in ("Dval2.jpg", "Dval5.jpg"):
        (root / "images" / name).unlink()
    report = MissingReport()
    data = FashionIQ(root).split_data("dress", "val", MissingPolicy.SKIP, report)
    assert data.missing_images == ["Dval2", "Dval5"]
    assert [t.index for t in data.dropped_triplets] == [1, 2, 4]
    assert [t.index for t in data.triplets] == [0, 3]
    assert "Dval2" not in data.image_ids and len(data.image_ids) == 4
    assert report.total_missing == 2 and report.total_dropped == 3
    assert report.to_dict()["dropped_triplets"] == {"dress.val": [1, 2, 4]}
    assert "2 images missing, 3 triplets left out" in report.summary()
    assert MissingReport.from_dict(report.to_dict()).to_dict() == report.to_dict()


def test_unknown_policy_is_refused():
    with pytest.raises(ConfigError, match="missing-image policy"):
        MissingPolicy.parse("ignore")


def test_missing_policy_on_real_files(real_fashioniq, tmp_path):
    """The skip policy's counts on the real val files equal a naive recount."""
    import shutil

    root = tmp_path / "fiq"
    shutil.copytree(real_fashioniq / "captions", root / "captions")
    shutil.copytree(real_fashioniq / "image_splits", root / "image_splits")
    ids = json.loads((root / "image_splits" / "split.toptee.val.json").read_text())
    (root / "images").mkdir()
    absent = set(ids[::25])
    for image_id in ids:
        if image_id not in absent:
            (root / "images" / f"{image_id}.jpg").write_bytes(b"placeholder")
    report = MissingReport()
    data = FashionIQ(root, categories=["toptee"]).split_data("toptee", "val", "skip", report)
    raw = json.loads((root / "captions" / "cap.toptee.val.json").read_text())
    naive_dropped = [i for i, e in enumerate(raw) if e["candidate"] in absent or e["target"] in absent]
    assert set(data.missing_images) == absent
    assert [t.index for t in data.dropped_triplets] == naive_dropped
    assert len(data.triplets) + len(naive_dropped) == 1961
    assert report.total_missing == len(absent)


def test_ambiguous_image_files_are_an_error(tmp_path):
    root = make_fashioniq(tmp_path)
    (root / "images" / "Dval0.png").write_bytes((root / "images" / "Dval0.jpg").read_bytes())
    with pytest.raises(DataError, match="several files"):
        FashionIQ(root).split_data("dress", "val")


def test_missing_root_is_one_line_error(tmp_path):
    with pytest.raises(DataError, match="data set folder not found"):
        FashionIQ(tmp_path / "nope")
