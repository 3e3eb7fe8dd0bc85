"""The doc tests' FIQ folder: the first real FashionIQ triplets with placeholder images, or the synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cirlab.data.check import check_dataset
from tests.docs import harness
from tests.docs.harness import FIQ_TRIPLETS, Workspace


def test_fiq_holds_the_first_real_triplets_and_an_image_for_each_of_their_ids(real_fashioniq: Path,
                                                                            tmp_path: Path) -> None:
    Workspace(tmp_path, {}).build_fiq(tmp_path / "FIQ")
    real = json.loads((real_fashioniq / "captions" / "cap.shirt.val.json").read_text(encoding="utf-8"))
    sample = json.loads((tmp_path / "FIQ" / "captions" / "cap.shirt.val.json").read_text(encoding="utf-8"))
    assert sample == real[: FIQ_TRIPLETS["val"]]
    ids = json.loads((tmp_path / "FIQ" / "image_splits" / "split.shirt.val.json").read_text(encoding="utf-8"))
    assert set(ids) == {i for t in sample for i in (t["candidate"], t["target"])}
    report = check_dataset(tmp_path / "FIQ", verify_images=True)
    assert report.ok, report.format()


def test_without_the_real_files_the_synthetic_set_stands_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(harness, "SHARED_FASHIONIQ", tmp_path / "absent")
    Workspace(tmp_path, {}).build_fiq(tmp_path / "FIQ")
    assert (tmp_path / "FIQ" / "synth_meta.json").is_file()
    assert check_dataset(tmp_path / "FIQ", verify_images=False).ok
