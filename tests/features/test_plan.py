"""Extraction planning: each distinct image once, in a fixed order; corrupt images removed with their triplets."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cirlab.data import FashionIQ, caption_variants, open_dataset
from cirlab.errors import DataError, MissingImagesError
from cirlab.features.plan import finalize, plan_extraction
from tests.data.cirr_builders import make_cirr, real_cirr, real_cirr_files  # noqa: F401 - a fixture
from tests.features.datasets import make_dataset, remove_image


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", images_per_split=3)


def file_ids(root: Path) -> list[str]:
    """Every id the split and caption files name, in the order extraction should meet them."""
    order = []
    for category in ("dress", "shirt"):
        for split in ("train", "val", "test"):
            order += json.loads((root / "image_splits" / f"split.{category}.{split}.json").read_text())
            for entry in json.loads((root / "captions" / f"cap.{category}.{split}.json").read_text()):
                order += [entry["candidate"]] + ([entry["target"]] if "target" in entry else [])
    return list(dict.fromkeys(order))


def test_distinct_images_in_first_appearance_order(data: Path) -> None:
    plan = plan_extraction(FashionIQ(data))
    assert plan.image_ids == file_ids(data)
    assert plan.image_ids.count("Dshared") == 1
    assert [p.stem for p in plan.image_paths] == plan.image_ids
    assert set(plan.split_ids) == {f"{c}.{s}" for c in ("dress", "shirt") for s in ("train", "val", "test")}
    assert "Dshared" in plan.split_ids["shirt.train"] and "Ddup" in plan.split_ids["dress.val"]


def test_triplets_and_texts(data: Path) -> None:
    dataset = FashionIQ(data)
    plan = plan_extraction(dataset)
    expected = [t for c in ("dress", "shirt") for s in ("train", "val", "test") for t in dataset.triplets(c, s)]
    assert plan.triplets == expected
    texts = plan.texts(2, 4)
    assert texts == [*caption_variants(expected[2].captions), *caption_variants(expected[3].captions)]


def test_missing_images_follow_the_policy(data: Path) -> None:
    remove_image(data, "Sval1")
    with pytest.raises(MissingImagesError, match="shirt/val: 1"):
        plan_extraction(FashionIQ(data))
    plan = plan_extraction(FashionIQ(data), "skip")
    assert "Sval1" not in plan.image_ids
    assert plan.missing.missing_images == {"shirt.val": ["Sval1"]}
    assert plan.missing.dropped_triplets == {"shirt.val": [0, 1]}
    assert all("Sval1" not in (t.reference, t.target) for t in plan.triplets)


def test_missing_image_error_counts_every_split_and_names_the_flag(data: Path) -> None:
    for image_id in ("Dtrain1", "Sval1", "Stest0"):
        remove_image(data, image_id)
    with pytest.raises(MissingImagesError) as info:
        plan_extraction(FashionIQ(data))
    message = str(info.value)
    assert message.startswith(f"{data / 'images'}: 3 images named by the split and caption files are missing ")
    assert "dress/train: 1, shirt/test: 1, shirt/val: 1" in message and "e.g. Dtrain1, Stest0, Sval1" in message
    assert "needed by 5 triplets" in message
    assert message.endswith("pass --missing skip to leave them out with counts") and "\n" not in message
    assert "policy" not in message


def test_one_file_of_a_split_without_the_other(data: Path) -> None:
    (data / "captions" / "cap.shirt.test.json").unlink()
    with pytest.raises(DataError, match="cap.shirt.test.json: file not found"):
        plan_extraction(FashionIQ(data))


def test_order_digest_tracks_order(data: Path) -> None:
    a = plan_extraction(FashionIQ(data))
    b = plan_extraction(FashionIQ(data))
    assert a.order_digest() == b.order_digest()
    b.image_ids[0], b.image_ids[1] = b.image_ids[1], b.image_ids[0]
    assert a.order_digest() != b.order_digest()


@pytest.mark.parametrize("seed", range(5))
def test_finalize_against_naive_loop(data: Path, seed: int) -> None:
    plan = plan_extraction(FashionIQ(data))
    corrupt = set(random.Random(seed).sample(plan.image_ids, 3))
    layout = finalize(plan, corrupt)
    kept_ids = [i for i in plan.image_ids if i not in corrupt]
    assert layout.image_ids == kept_ids
    assert [plan.image_ids[r] for r in layout.image_rows] == kept_ids
    for key, ids in plan.split_ids.items():
        assert [layout.image_ids[r] for r in layout.split_rows[key]] == [i for i in ids if i not in corrupt]
    kept, dropped = [], {}
    for position, t in enumerate(plan.triplets):
        if t.reference in corrupt or t.target in corrupt:
            dropped.setdefault(f"{t.category}.{t.split}", []).append(t.index)
        else:
            kept.append(position)
    assert layout.triplet_positions == kept
    assert layout.corrupt.dropped_triplets == dropped
    assert layout.corrupt.total_missing == len(corrupt & {i for ids in plan.split_ids.values() for i in ids}
                                                  | {i for t in plan.triplets for i in (t.reference, t.target)
                                                     if i in corrupt})
    for record, position in zip(layout.triplets, kept):
        t = plan.triplets[position]
        assert layout.image_ids[record["reference_row"]] == t.reference
        assert record["target_row"] == (-1 if t.target is None else layout.image_ids.index(t.target))
        assert (record["category"], record["split"], record["file_index"]) == (t.category, t.split, t.index)
        assert record["captions"] == list(t.captions)


# ------------------------------------------------------------------ CIRR
def test_real_cirr_plan(real_cirr_files: Path, tmp_path: Path) -> None:  # noqa: F811
    """The real val and test1 annotations: every split image once, every query with its one caption as written."""
    root = real_cirr(real_cirr_files, tmp_path / "cirr")
    (root / "cirr" / "image_splits" / "split.rc2.train.json").unlink()  # no training images here
    plan = plan_extraction(open_dataset(root))
    assert len(plan.image_ids) == 2297 + 2315 and set(plan.split_ids) == {"all.val", "all.test1"}
    assert len(plan.triplets) == 4181 + 4148 and plan.forms == 1
    assert plan.texts(0, 2) == [plan.triplets[0].captions[0], plan.triplets[1].captions[0]]
    layout = finalize(plan, set())
    rows = {image_id: row for row, image_id in enumerate(layout.image_ids)}
    for record, t in zip(layout.triplets, plan.triplets):
        assert record["query_id"] == t.query_id and record["captions"] == list(t.captions)
        assert record["subset_rows"] == [rows[i] for i in t.subset] and len(record["subset_rows"]) == 6
        assert record.get("soft_targets", []) == [[rows[i], s] for i, s in t.soft_targets]
    assert sum("soft_targets" in record for record in layout.triplets) == 4181  # test1 has none


def test_cirr_finalize_drops_a_triplet_only_for_its_reference_or_target(tmp_path: Path) -> None:
    plan = plan_extraction(open_dataset(make_cirr(tmp_path / "cirr")))
    first = next(t for t in plan.triplets if t.split == "val")
    other = next(i for i in first.subset if i not in (first.reference, first.target))
    soft = next(i for i, _ in first.soft_targets if i not in (first.reference, first.target))
    layout = finalize(plan, {other, soft})
    record = next(r for r in layout.triplets if r["split"] == "val" and r["file_index"] == first.index)
    kept = [layout.image_ids[row] for row in record["subset_rows"]]
    assert kept == [i for i in first.subset if i not in (other, soft)]
    assert [layout.image_ids[row] for row, _ in record["soft_targets"]] == [
        i for i, _ in first.soft_targets if i not in (other, soft)]
    layout = finalize(plan, {first.target})
    assert first.index in layout.corrupt.dropped_triplets["all.val"]
