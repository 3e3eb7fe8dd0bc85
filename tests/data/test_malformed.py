"""The malformed-data corpus: every broken data set gives one clear line naming the file and the problem.

Each case starts from a valid hand-made data set, breaks one thing, and runs ``cirlab data check``
(which collects every problem) and, where the problem is in a file the reader needs, the reader
itself (which stops at the first one). Empty captions are the documented exception: they are
real FashionIQ queries, kept and counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from cirlab.cli import main
from cirlab.data import FashionIQ
from cirlab.errors import DataError
from tests.builders import make_fashioniq, set_entry_key, write_json


def _drop_folder(name: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        for path in sorted((root / name).iterdir()):
            path.unlink()
        (root / name).rmdir()
    return mutate


def _write_text(relative: str, text: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / relative).write_text(text, encoding="utf-8")
    return mutate


def _edit_json(relative: str, edit: Callable[[object], object]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / relative
        write_json(path, edit(json.loads(path.read_text())))
    return mutate


def _non_utf8(root: Path) -> None:
    path = root / "captions" / "cap.dress.val.json"
    path.write_bytes(path.read_bytes().replace(b"is colour 1", b"is colour \xe9\xff"))


def _corrupt_image(root: Path) -> None:
    path = root / "images" / "Dval3.jpg"
    path.write_bytes(path.read_bytes()[:40])


def _huge_image(root: Path) -> None:
    (root / "images" / "Dval3.jpg").unlink()
    Image.new("1", (9000, 6000)).save(root / "images" / "Dval3.png")


def _remove(relative: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / relative).unlink()
    return mutate


def _empty_file(relative: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / relative).write_bytes(b"")
    return mutate


def _jpg_and_png(root: Path) -> None:
    Image.new("RGB", (8, 8)).save(root / "images" / "Dval1.png")


CAP = "captions/cap.dress.val.json"
SPLIT = "image_splits/split.dress.val.json"

#: (case name, how to break the data set, file named in the message, problem text, reader must fail too)
CORPUS: list[tuple[str, Callable[[Path], None], str, str, bool]] = [
    ("missing images folder", _drop_folder("images"), "images", "images folder not found", True),
    ("missing splits folder", _drop_folder("image_splits"), "image_splits", "no image_splits files found", True),
    ("missing captions folder", _drop_folder("captions"), "captions", "no captions files found", True),
    ("missing caption file", _remove(CAP), "cap.dress.val.json", "file not found", True),
    ("malformed JSON", _write_text(CAP, '[{"candidate": "Dval0",\n "target": }]'), "cap.dress.val.json",
     "invalid JSON at line 2 column 12", True),
    ("empty JSON file", _write_text(SPLIT, "  \n"), "split.dress.val.json", "file is empty", True),
    ("wrong top-level type", _write_text(SPLIT, '{"ids": []}'), "split.dress.val.json", "expected a JSON list", True),
    ("missing key", _edit_json(CAP, set_entry_key(2, "candidate", None)), "cap.dress.val.json",
     "entry 2: missing key 'candidate'", True),
    ("wrong caption shape", _edit_json(CAP, set_entry_key(1, "captions", ["only one"])), "cap.dress.val.json",
     "entry 1: 'captions' must be a list of two strings", True),
    ("non-string id", _edit_json(CAP, set_entry_key(0, "target", 12)), "cap.dress.val.json",
     "image id must be a string", True),
    ("path traversal id", _edit_json(CAP, set_entry_key(0, "target", "../../etc/passwd")), "cap.dress.val.json",
     "is not a plain name", True),
    ("non-UTF-8 text", _non_utf8, "cap.dress.val.json", "not UTF-8 text (byte 0xe9", True),
    ("duplicate ids in a split", _edit_json(SPLIT, lambda ids: [*ids, ids[1]]), "split.dress.val.json",
     "duplicate image id 'Dval1'", True),
    ("same id as .jpg and .png", _jpg_and_png, "images", "Dval1 (Dval1.jpg, Dval1.png)", True),
    ("split naming unknown images", _edit_json(SPLIT, lambda ids: [*ids, "NOSUCHIMG"]), "images",
     "missing images: 1", True),
    ("missing image", _remove("images/Dval4.jpg"), "images", "missing images: 1 (affecting 2 triplets)", True),
    ("zero-byte image", _empty_file("images/Dval3.jpg"), "Dval3.jpg", "image file is empty (0 bytes)", False),
    ("corrupt image", _corrupt_image, "Dval3.jpg", "cannot decode image", False),
    ("image far larger than expected", _huge_image, "Dval3.png", "image is 9000x6000 pixels, over the limit", False),
    ("triplet outside its split", _edit_json(CAP, set_entry_key(0, "target", "Dtrain1")), "cap.dress.val.json",
     "entry 0: image 'Dtrain1' is not in split.dress.val.json", False),
    ("malformed tags", _write_text("tags/asin2attr.dress.val.json", '{"Dval0": "red"}'), "asin2attr.dress.val.json",
     "tags of 'Dval0' must be a list", False),
]


@pytest.mark.parametrize(("mutate", "filename", "problem"), [c[1:4] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_data_check_names_the_file_and_problem(tmp_path, capsys, mutate, filename, problem):
    root = make_fashioniq(tmp_path / "fiq")
    mutate(root)
    status = main(["data", "check", str(root)])
    out = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in out.out + out.err
    matching = [line for line in out.out.splitlines() if problem in line]
    assert matching, out.out
    assert any(filename in line for line in matching) or filename == "images", matching
    assert "result: PROBLEMS FOUND" in out.out


READER_CASES = [c for c in CORPUS if c[4]]


@pytest.mark.parametrize(("mutate", "filename"), [(c[1], c[2]) for c in READER_CASES], ids=[c[0] for c in READER_CASES])
def test_reader_fails_with_one_line_naming_the_file(tmp_path, mutate, filename):
    root = make_fashioniq(tmp_path / "fiq")
    mutate(root)
    with pytest.raises(DataError) as info:
        FashionIQ(root).split_data("dress", "val")
    message = str(info.value)
    assert "\n" not in message
    assert filename in message


def test_clean_data_set_passes(tmp_path, capsys):
    root = make_fashioniq(tmp_path / "fiq")
    assert main(["data", "check", str(root), "--json", str(tmp_path / "check.json")]) == 0
    out = capsys.readouterr().out
    assert "result: OK" in out and "images on disk: 36" in out
    summary = json.loads((tmp_path / "check.json").read_text())
    assert summary["ok"] and summary["triplets"]["dress.val"] == 5 and summary["categories"] == ["dress", "shirt"]


def test_empty_captions_are_kept_and_counted(tmp_path, capsys):
    root = make_fashioniq(tmp_path / "fiq")
    _edit_json(CAP, set_entry_key(0, "captions", ["", "is darker"]))(root)
    assert main(["data", "check", str(root)]) == 0
    assert "empty captions (kept): 1" in capsys.readouterr().out
    assert len(FashionIQ(root).split_data("dress", "val").triplets) == 5


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 12
