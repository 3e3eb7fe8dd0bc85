"""The CIRR reader: the real val/test1 annotations with placeholder images, and a hand-made folder for the rest."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cirlab.cli import main
from cirlab.data import CIRR, MissingPolicy, MissingReport, open_dataset
from cirlab.errors import ConfigError, DataError, MissingImagesError
from tests.builders import set_entry_key, write_json
from tests.data.cirr_builders import make_cirr, real_cirr, real_cirr_files  # noqa: F401 - a fixture

SOFT_SCORES = {1.0, 0.5, 0.2, -1.0}


@pytest.fixture(scope="module")
def real(real_cirr_files: Path, tmp_path_factory: pytest.TempPathFactory) -> CIRR:  # noqa: F811
    return CIRR(real_cirr(real_cirr_files, tmp_path_factory.mktemp("cirr")))


# ------------------------------------------------------------- the real files
def test_real_counts(real: CIRR) -> None:
    assert real.categories == ("all",) and real.splits() == ["train", "val", "test1"]
    val, test = real.split_data("all", "val"), real.split_data("all", "test1")
    assert (len(val.triplets), len(val.image_ids)) == (4181, 2297)
    assert (len(test.triplets), len(test.image_ids)) == (4148, 2315)
    assert len(real.image_ids("all", "train")) == 16939
    assert real.triplets("all", "train") == []  # the annotations ship without the training captions


def test_real_targets_val_has_them_test1_withholds_them(real: CIRR) -> None:
    assert real.has_targets("val") and not real.has_targets("test1")
    val_ids = set(real.image_ids("all", "val"))
    assert all(t.target in val_ids and t.reference in val_ids for t in real.triplets("all", "val"))
    test = real.triplets("all", "test1")
    assert all(t.target is None and not t.soft_targets for t in test)


def test_real_subset_is_six_images_with_the_reference_and_target(real: CIRR) -> None:
    for split in ("val", "test1"):
        for t in real.triplets("all", split):
            assert len(t.subset) == 6 and len(set(t.subset)) == 6 and t.reference in t.subset
            assert t.target is None or t.target in t.subset


def test_real_soft_targets(real: CIRR) -> None:
    val = real.triplets("all", "val")
    assert sum(len(t.soft_targets) > 1 for t in val) == 645
    assert {score for t in val for _, score in t.soft_targets} == SOFT_SCORES
    # a quirk of the release: 37 queries list their reference, and not target_hard, among the soft targets
    quirk = [t for t in val if t.target not in dict(t.soft_targets)]
    assert len(quirk) == 37 and all(t.reference in dict(t.soft_targets) for t in quirk)
    first = val[0]
    assert (first.query_id, first.reference, first.target) == ("12060", "dev-244-0-img0", "dev-1028-1-img1")
    assert first.soft_targets == (("dev-1028-1-img1", 1.0),) and first.index == 0


def test_real_empty_test_caption_is_kept(real: CIRR) -> None:
    blank = [t for t in real.triplets("all", "test1") if not t.captions[0].strip()]
    assert [(t.query_id, t.captions) for t in blank] == [("27098", (" ",))]
    assert CIRR.caption_texts(blank[0].captions) == (" ",)


def test_real_query_ids_are_unique_strings(real: CIRR) -> None:
    for split in ("val", "test1"):
        ids = [t.query_id for t in real.triplets("all", split)]
        assert len(set(ids)) == len(ids) and all(isinstance(i, str) and i.isdigit() for i in ids)


def test_real_image_paths_follow_the_split_files(real: CIRR) -> None:
    assert real.image_path("dev-244-0-img0") == real.root / "dev" / "dev-244-0-img0.png"
    assert real.image_path("test1-147-1-img1") == real.root / "test1" / "test1-147-1-img1.png"
    assert real.image_path("train-11041-2-img0") is None  # no training images written
    assert len(real.available_image_ids()) == 2297 + 2315


def test_real_missing_policy_against_a_naive_recount(real_cirr_files: Path, tmp_path: Path) -> None:  # noqa: F811
    root = real_cirr(real_cirr_files, tmp_path / "cirr")
    paths = json.loads((root / "cirr" / "image_splits" / "split.rc2.val.json").read_text())
    absent = set(list(paths)[::25])
    for name in absent:
        (root / paths[name]).unlink()
    with pytest.raises(MissingImagesError, match=f"{len(absent)} images of val are missing"):
        CIRR(root).split_data("all", "val")
    report = MissingReport()
    data = CIRR(root).split_data("all", "val", MissingPolicy.SKIP, report)
    raw = json.loads((root / "cirr" / "captions" / "cap.rc2.val.json").read_text())
    naive = [i for i, q in enumerate(raw) if q["reference"] in absent or q["target_hard"] in absent]
    assert set(data.missing_images) == absent and [t.index for t in data.dropped_triplets] == naive
    assert len(data.triplets) + len(naive) == 4181 and report.to_dict()["dropped_triplets"] == {"all.val": naive}


def test_real_annotation_folder_passed_itself_gets_advice(real_cirr_files: Path) -> None:  # noqa: F811
    with pytest.raises(DataError, match="looks like CIRR's annotation folder: pass the folder that holds it"):
        open_dataset(real_cirr_files)


def test_real_files_pass_data_check(real_cirr_files: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    root = real_cirr(real_cirr_files, tmp_path / "cirr")
    (root / "cirr" / "image_splits" / "split.rc2.train.json").unlink()  # no training images here
    assert main(["data", "check", str(root), "--no-images", "--json", str(tmp_path / "check.json")]) == 0
    summary = json.loads((tmp_path / "check.json").read_text())
    assert summary["dataset"] == "cirr" and summary["splits"] == ["val", "test1"]
    assert summary["triplets"] == {"all.val": 4181, "all.test1": 4148}
    assert summary["split_images"] == {"all.val": 2297, "all.test1": 2315}
    assert summary["images_on_disk"] == 2297 + 2315 and summary["empty_captions"] == 1
    assert "(cirr layout)" in capsys.readouterr().out


# ---------------------------------------------------------------- hand-made
@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_cirr(tmp_path / "cirr")


def test_records_point_back_to_the_file(root: Path) -> None:
    dataset = CIRR(root)
    raw = json.loads((root / "cirr" / "captions" / "cap.rc2.val.json").read_text())
    for t in dataset.triplets("all", "val"):
        entry = raw[t.index]
        assert (t.reference, t.target, t.captions) == (entry["reference"], entry["target_hard"], (entry["caption"],))
        assert t.query_id == str(entry["pairid"]) and t.subset == tuple(entry["img_set"]["members"])
        assert t.soft_targets == tuple(entry["target_soft"].items()) and (t.category, t.split) == ("all", "val")


def test_caption_is_encoded_as_written(root: Path) -> None:
    t = CIRR(root).triplets("all", "val")[0]
    assert CIRR.caption_texts(t.captions) == ("make it number 1.",)  # no stripping or capitalising
    assert CIRR.caption_forms == ("caption",) and CIRR.eval_form_index == 0


def test_train_images_in_numbered_folders(root: Path) -> None:
    dataset = CIRR(root)
    names = dataset.image_ids("all", "train")
    assert dataset.image_path(names[0]).parent.name == "0" and dataset.image_path(names[1]).parent.name == "1"
    assert [p.relative_to(root).as_posix() for p in dataset.image_folders()] == ["dev", "test1", "train/0", "train/1"]


def test_a_split_file_without_captions_is_images_only(root: Path) -> None:
    (root / "cirr" / "captions" / "cap.rc2.train.json").unlink()
    dataset = CIRR(root)
    assert dataset.has_split("all", "train") and dataset.triplets("all", "train") == []
    assert dataset.present_splits("all") == ["train", "val", "test1"]


def test_captions_without_their_split_file_are_an_error(root: Path) -> None:
    (root / "cirr" / "image_splits" / "split.rc2.test1.json").unlink()
    with pytest.raises(DataError, match="split.rc2.test1.json: file not found, but the caption file of test1 exists"):
        CIRR(root).present_splits("all")


def test_categories_other_than_all_are_refused(root: Path) -> None:
    with pytest.raises(ConfigError, match="unknown categories \\['dress'\\]; CIRR has \\['all'\\]"):
        CIRR(root, ["dress"])
    with pytest.raises(DataError, match="CIRR has no category 'dress'"):
        CIRR(root).triplets("dress", "val")


def test_a_missing_image_folder_makes_its_images_missing(root: Path) -> None:
    shutil.rmtree(root / "dev")
    with pytest.raises(MissingImagesError, match="8 images of val are missing .* affecting 6 of 6 triplets"):
        CIRR(root).split_data("all", "val")
    assert CIRR(root).split_data("all", "test1").image_ids  # the other splits are unaffected


def test_a_name_at_two_paths_is_an_error(root: Path) -> None:
    path = root / "cirr" / "image_splits" / "split.rc2.test1.json"
    paths = json.loads(path.read_text())
    paths["dev-0-0-img0"] = "./test1/dev-0-0-img0.png"
    write_json(path, paths)
    with pytest.raises(DataError, match="image 'dev-0-0-img0' is at 'test1/dev-0-0-img0.png' here but at "
                                        "'dev/dev-0-0-img0.png' in another split file"):
        CIRR(root).image_path("dev-0-0-img0")


# --------------------------------------------------------- malformed files
SPLIT = "cirr/image_splits/split.rc2.val.json"
CAP = "cirr/captions/cap.rc2.val.json"


Mutation = Callable[[Path], Any]


def _edit(relative: str, edit: Callable[[Any], Any]) -> Mutation:
    def mutate(root: Path) -> None:
        path = root / relative
        write_json(path, edit(json.loads(path.read_text())))
    return mutate


def _remap(name: str, value: str) -> Callable[[dict], dict]:
    return lambda paths: {**paths, name: value}


def _write_text(relative: str, text: str) -> Mutation:
    return lambda root: (root / relative).write_text(text, encoding="utf-8")


def _drop(relative: str) -> Mutation:
    return lambda root: shutil.rmtree(root / relative) if (root / relative).is_dir() else (root / relative).unlink()


def _corrupt(root: Path) -> None:
    path = root / "dev" / "dev-3-0-img1.png"
    path.write_bytes(path.read_bytes()[:30])


#: (case, how to break the folder, file named in the message, problem text, the reader fails too)
CORPUS = [
    ("missing captions folder", _drop("cirr/captions"), "captions", "no captions files found", False),
    ("caption file without split file", _drop(SPLIT), "split.rc2.val.json", "but the caption file of val exists", True),
    ("malformed JSON", _write_text(CAP, '[{"pairid": 1,\n "reference": }]'), "cap.rc2.val.json",
     "invalid JSON at line 2 column 15", True),
    ("split file not an object", _write_text(SPLIT, "[]"), "split.rc2.val.json", "expected a JSON object", True),
    ("repeated name in a split file", _write_text(SPLIT, '{"a": "./dev/a.png", "a": "./dev/b.png"}'),
     "split.rc2.val.json", "key 'a' appears twice", True),
    ("path outside the root", _edit(SPLIT, _remap("dev-0-0-img0", "../dev-0-0-img0.png")), "split.rc2.val.json",
     "is not a relative path inside the data set folder", True),
    ("path not an image", _edit(SPLIT, _remap("dev-0-0-img0", "./dev/dev-0-0-img0.gif")), "split.rc2.val.json",
     "is not a .jpg, .jpeg, .png file", True),
    ("missing target", _edit(CAP, set_entry_key(2, "target_hard", None)), "cap.rc2.val.json",
     "entry 2: missing key 'target_hard'", True),
    ("duplicate pairid", _edit(CAP, set_entry_key(3, "pairid", 6)), "cap.rc2.val.json",
     "entry 3: duplicate pairid 6 (first at entry 0)", True),
    ("pairid true", _edit(CAP, set_entry_key(1, "pairid", True)), "cap.rc2.val.json", "entry 1: 'pairid' must be",
     True),
    ("caption not a string", _edit(CAP, set_entry_key(0, "caption", ["a"])), "cap.rc2.val.json",
     "entry 0: 'caption' must be a string", True),
    ("soft score not a number", _edit(CAP, set_entry_key(0, "target_soft", {"dev-1-0-img1": "1.0"})),
     "cap.rc2.val.json",
     "'target_soft' score of 'dev-1-0-img1' must be a number", True),
    ("subset not a list", _edit(CAP, set_entry_key(0, "img_set", {"members": "dev-1-0-img1"})), "cap.rc2.val.json",
     "entry 0: 'img_set' must be an object with a list 'members'", True),
    ("path traversal name", _edit(CAP, set_entry_key(0, "reference", "../x")), "cap.rc2.val.json",
     "is not a plain name", True),
    ("subset image outside the split", _edit(CAP, set_entry_key(0, "img_set", {"members": ["test1-0-0-img0"]})),
     "cap.rc2.val.json", "entry 0: image 'test1-0-0-img0' is not in split.rc2.val.json", False),
    ("missing image", _drop("dev/dev-4-0-img0.png"), "images", "missing images: 1 (affecting 2 triplets)", True),
    ("corrupt image", _corrupt, "dev-3-0-img1.png", "cannot decode image", False),
]


@pytest.mark.parametrize(("mutate", "filename", "problem"), [c[1:4] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_data_check_names_the_file_and_problem(root: Path, capsys, mutate, filename: str, problem: str) -> None:
    mutate(root)
    status = main(["data", "check", str(root)])
    out = capsys.readouterr()
    assert status == 1 and "Traceback" not in out.out + out.err
    matching = [line for line in out.out.splitlines() if problem in line]
    assert matching, out.out
    assert any(filename in line for line in matching) or filename == "images", matching
    assert "result: PROBLEMS FOUND" in out.out


READER_CASES = [c for c in CORPUS if c[4]]


@pytest.mark.parametrize(("mutate", "filename"), [(c[1], c[2]) for c in READER_CASES],
                         ids=[c[0] for c in READER_CASES])
def test_reader_fails_with_one_line_naming_the_file(root: Path, mutate, filename: str) -> None:
    mutate(root)
    with pytest.raises(DataError) as info:
        dataset = CIRR(root)
        dataset.present_splits("all")
        dataset.split_data("all", "val")
    assert "\n" not in str(info.value) and (filename in str(info.value) or filename == "images")


def test_clean_folder_passes_data_check(root: Path, tmp_path: Path, capsys) -> None:
    assert main(["data", "check", str(root), "--dataset", "cirr", "--json", str(tmp_path / "check.json")]) == 0
    summary = json.loads((tmp_path / "check.json").read_text())
    assert summary["ok"] and summary["categories"] == ["all"] and summary["splits"] == ["train", "val", "test1"]
    assert summary["triplets"] == {"all.train": 6, "all.val": 6, "all.test1": 6} and summary["empty_captions"] == 1
    assert summary["images_on_disk"] == 24
