"""The data fingerprint changes with what it covers and only with that."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from cirlab.errors import DataError
from cirlab.features.fingerprint import annotation_files, data_fingerprint, image_listing
from tests.data.cirr_builders import make_cirr
from tests.features.datasets import make_dataset


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", images_per_split=2)


def reference_fingerprint(root: Path, categories: list[str]) -> str:
    """The documented recipe, spelled out with plain loops."""
    digest = hashlib.sha256()
    files = []
    for folder, pattern in (("captions", "cap.{}.*.json"), ("image_splits", "split.{}.*.json"),
                            ("tags", "asin2attr.{}.*.json")):
        for category in categories:
            files.extend((root / folder).glob(pattern.format(category)))
    for path in sorted(files):
        data = path.read_bytes()
        digest.update(f"file {path.relative_to(root).as_posix()} {len(data)}\n".encode())
        digest.update(data)
    for path in sorted((root / "images").iterdir()):
        digest.update(f"image {path.name} {path.stat().st_size}\n".encode())
    return digest.hexdigest()


def test_matches_reference_recipe(data: Path) -> None:
    assert data_fingerprint(data) == reference_fingerprint(data, ["dress", "shirt"])
    assert data_fingerprint(data, ["shirt"]) == reference_fingerprint(data, ["shirt"])
    assert data_fingerprint(data, ["shirt"]) != data_fingerprint(data)


def test_covers_every_annotation_file(data: Path) -> None:
    names = {p.name for p in annotation_files(data)}
    assert len(names) == 2 * 3 * 3 and "asin2attr.shirt.val.json" in names
    assert image_listing(data)[0][0] == "Ddup.png"


def test_stable_under_copy_and_touch(data: Path, tmp_path: Path) -> None:
    before = data_fingerprint(data)
    copy = Path(shutil.copytree(data, tmp_path / "copy"))
    for path in (copy / "images").iterdir():
        os.utime(path, (1, 1))
    assert data_fingerprint(copy) == before


@pytest.mark.parametrize("edit", ["caption", "split", "tag", "rename", "add", "remove", "resize"])
def test_changes_with_any_covered_edit(data: Path, edit: str) -> None:
    before = data_fingerprint(data)
    images = data / "images"
    if edit == "caption":
        path = data / "captions" / "cap.dress.val.json"
        path.write_text(path.read_text().replace("number 1", "number 2"))
    elif edit == "split":
        path = data / "image_splits" / "split.shirt.test.json"
        path.write_text(path.read_text().replace("]", ", \"extra\"]"))
    elif edit == "tag":
        path = data / "tags" / "asin2attr.dress.train.json"
        path.write_text(path.read_text().replace("plain", "plain2"))
    elif edit == "rename":
        (images / "Dval1.jpg").rename(images / "Dval9.jpg")
    elif edit == "add":
        shutil.copy(images / "Dval1.jpg", images / "New.jpg")
    elif edit == "remove":
        (images / "Sval0.png").unlink()
    else:
        with open(images / "Sval0.png", "ab") as handle:
            handle.write(b"\0")
    assert data_fingerprint(data) != before


def test_no_images_folder_is_a_data_error(data: Path) -> None:
    shutil.rmtree(data / "images")
    with pytest.raises(DataError, match="images folder not found"):
        data_fingerprint(data)


def test_a_folder_of_no_known_layout_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a data set folder of a known layout"):
        data_fingerprint(tmp_path)


# ------------------------------------------------------------------ CIRR
@pytest.fixture
def cirr(tmp_path: Path) -> Path:
    return make_cirr(tmp_path / "cirr", images_per_split=4)


def reference_cirr_fingerprint(root: Path) -> str:
    """The recipe for CIRR: its caption and split files, then every image file of the folders its split files
    point into, named relative to the root."""
    digest = hashlib.sha256()
    for path in sorted((root / "cirr").glob("*/*.rc2.*.json")):
        data = path.read_bytes()
        digest.update(f"file {path.relative_to(root).as_posix()} {len(data)}\n".encode())
        digest.update(data)
    images = [path for folder in ("dev", "test1", "train/0", "train/1") for path in (root / folder).iterdir()]
    for path in sorted(images, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(f"image {path.relative_to(root).as_posix()} {path.stat().st_size}\n".encode())
    return digest.hexdigest()


def test_cirr_matches_its_recipe(cirr: Path) -> None:
    assert data_fingerprint(cirr) == reference_cirr_fingerprint(cirr)
    assert [name for name, _ in image_listing(cirr)][:2] == ["dev/dev-0-0-img0.png", "dev/dev-1-0-img1.png"]
    assert len(annotation_files(cirr)) == 6


@pytest.mark.parametrize("edit", ["caption", "split", "resize", "rename", "other folder"])
def test_cirr_changes_with_covered_edits_only(cirr: Path, edit: str) -> None:
    before = data_fingerprint(cirr)
    if edit == "caption":
        path = cirr / "cirr" / "captions" / "cap.rc2.val.json"
        path.write_text(path.read_text().replace("number 1", "number 2"))
    elif edit == "split":
        path = cirr / "cirr" / "image_splits" / "split.rc2.test1.json"
        path.write_text(path.read_text().replace("./test1/test1-0", "test1/test1-0"))
    elif edit == "resize":
        with open(cirr / "dev" / "dev-1-0-img1.png", "ab") as handle:
            handle.write(b"\0")
    elif edit == "rename":
        (cirr / "dev" / "dev-1-0-img1.png").rename(cirr / "dev" / "dev-9-0-img1.png")
    else:  # images outside the folders the split files name are not part of the data set
        shutil.copytree(cirr / "dev", cirr / "extra")
        assert data_fingerprint(cirr) == before
        return
    assert data_fingerprint(cirr) != before
