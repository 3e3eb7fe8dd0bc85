"""Damaged data sets found by fault injection: each gives one line naming the file and the problem.

Every case breaks a valid hand-made data set one way and checks both the reader (which stops at the
first problem with a :class:`DataError`) and ``cirlab data check`` (which lists it, exit status 1, no
traceback). Cases: JSON nested thousands of levels deep (a ``RecursionError`` in the parser), a
symlink loop among the images or as the images folder (``OSError`` errno 40), an images folder that
cannot be listed (``PermissionError``), a runaway caption and an oversized caption file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cirlab.cli import main
from cirlab.data import FashionIQ, jsonfiles
from cirlab.errors import DataError
from tests.builders import make_fashioniq, write_json

CAP = "captions/cap.dress.val.json"


def _nested_json(root: Path) -> None:
    depth = 100_000
    (root / CAP).write_text("[" * depth + "]" * depth, encoding="utf-8")


def _looping_image(root: Path) -> None:
    path = root / "images" / "Dval2.jpg"
    path.unlink()
    path.symlink_to(path.name)  # Dval2.jpg -> Dval2.jpg


def _looping_images_folder(root: Path) -> None:
    folder = root / "images"
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.symlink_to(folder.name)  # images -> images


def _long_caption(root: Path) -> None:
    entries = jsonfiles.read_json(root / CAP)
    entries[3]["captions"][1] = "is much longer " * 200_000  # 3 MB
    write_json(root / CAP, entries)


#: (case name, how to break the data set, file named in the message, problem text)
FAULTS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("deeply nested JSON", _nested_json, "cap.dress.val.json", "JSON nested too deeply"),
    ("symlink loop among the images", _looping_image, "Dval2.jpg", "symlink loop"),
    ("images folder is a symlink loop", _looping_images_folder, "images",
     "cannot list the images folder: symlink loop"),
    ("runaway caption", _long_caption, "cap.dress.val.json",
     "entry 3: caption 2 is 3,000,000 characters long, over the limit of 1,000"),
]


def _reader_error(root: Path) -> str:
    with pytest.raises(DataError) as info:
        FashionIQ(root).split_data("dress", "val")
    message = str(info.value)
    assert "\n" not in message
    return message


def _check_lines(root: Path, capsys: pytest.CaptureFixture[str], problem: str) -> list[str]:
    status = main(["data", "check", str(root)])
    out = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in out.out + out.err
    assert "result: PROBLEMS FOUND" in out.out
    return [line for line in out.out.splitlines() if problem in line]


@pytest.mark.parametrize(("mutate", "filename", "problem"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_reader_names_the_file_and_problem(tmp_path, mutate, filename, problem):
    root = make_fashioniq(tmp_path / "fiq")
    mutate(root)
    message = _reader_error(root)
    assert problem in message and filename in message, message


@pytest.mark.parametrize(("mutate", "filename", "problem"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_data_check_lists_the_problem(tmp_path, capsys, mutate, filename, problem):
    root = make_fashioniq(tmp_path / "fiq")
    mutate(root)
    lines = _check_lines(root, capsys, problem)
    assert any(filename in line for line in lines), lines


def test_caption_file_over_the_size_limit_is_refused_unparsed(tmp_path, monkeypatch):
    root = make_fashioniq(tmp_path / "fiq")
    monkeypatch.setattr(jsonfiles, "MAX_CAPTION_FILE_BYTES", 1_000)
    (root / CAP).write_text("[" + "not json at all " * 100 + "]", encoding="utf-8")  # 1,602 bytes
    message = _reader_error(root)
    assert "cap.dress.val.json: file is 1,602 bytes, over the limit of 1,000 bytes" in message
    assert "invalid JSON" not in message  # refused from its size, never parsed


def test_real_captions_are_far_within_the_bounds(real_fashioniq):
    for path in sorted((real_fashioniq / "captions").glob("cap.*.json")):
        assert path.stat().st_size < jsonfiles.MAX_CAPTION_FILE_BYTES / 10
        entries = jsonfiles.read_caption_file(path, require_target=".test." not in path.name)
        assert max(len(c) for e in entries for c in e["captions"]) < jsonfiles.MAX_CAPTION_CHARS / 5


def _refuse_listing(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``os.scandir`` of ``folder`` fail as the kernel does for a folder without read permission."""
    real_scandir = os.scandir

    def scandir(path=".", *args, **kwargs):
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unlistable_images_folder(tmp_path, capsys, monkeypatch):
    # Simulated, so that it runs under root too (root lists any folder whatever its permissions).
    root = make_fashioniq(tmp_path / "fiq")
    _refuse_listing(root / "images", monkeypatch)
    problem = "cannot list the images folder: Permission denied"
    assert f"{root / 'images'}: {problem}" == _reader_error(root)
    assert _check_lines(root, capsys, problem)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root lists folders without read permission; test_unlistable_images_folder "
                           "covers this case by simulating the PermissionError")
def test_images_folder_without_read_permission(tmp_path):
    root = make_fashioniq(tmp_path / "fiq")
    (root / "images").chmod(0o300)  # writable and searchable, not listable
    try:
        assert "cannot list the images folder: Permission denied" in _reader_error(root)
    finally:
        (root / "images").chmod(0o755)
