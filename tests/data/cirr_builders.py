"""Small CIRR-layout folders for tests: a hand-made one, and the real annotation files with placeholder images.

A CIRR-layout folder holds ``cirr/captions/cap.rc2.<split>.json`` (queries), ``cirr/image_splits/
split.rc2.<split>.json`` (image name → path relative to the root) and the images at those paths
(``train/<n>/``, ``dev/``, ``test1/``). :func:`make_cirr` writes a tiny complete one of solid-colour
images; :func:`real_cirr` copies the real val/test1 annotations of ``../shared/data/cirr`` and writes
a placeholder file for every image their split files name; :func:`real_cirr_files` is the fixture that
finds those annotations (and skips a test without them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.builders import COLOURS, write_image, write_json

SHARED_CIRR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cirr"

#: Images per split of :func:`make_cirr`, and where each split's images sit.
FOLDERS = {"train": ("train/0", "train/1"), "val": ("dev",), "test1": ("test1",)}
PREFIX = {"train": "train", "val": "dev", "test1": "test1"}


@pytest.fixture(scope="session")
def real_cirr_files() -> Path:
    """The folder holding CIRR's real ``captions/`` (val, test1) and ``image_splits/``; skip when absent."""
    if not (SHARED_CIRR / "captions").is_dir():
        pytest.skip("../shared/data/cirr is not present")
    return SHARED_CIRR


def image_names(split: str, count: int) -> list[str]:
    """CIRR-like names: ``dev-3-0-img1``."""
    return [f"{PREFIX[split]}-{n}-0-img{n % 2}" for n in range(count)]


def make_cirr(root: Path, *, images_per_split: int = 8, ext: str = ".png") -> Path:
    """A complete, valid CIRR-layout data set: ``images_per_split`` images per split, queries linking image n to
    n + 1 with a subset of six images (reference and target among them), soft targets with positive and negative
    scores, train images in two numbered folders, a test1 split without targets and one blank test caption."""
    pairid = 0
    for split, folders in FOLDERS.items():
        names = image_names(split, images_per_split)
        paths = {}
        for n, name in enumerate(names):
            relative = f"{folders[n % len(folders)]}/{name}{ext}"
            paths[name] = f"./{relative}"
            write_image(root / relative, COLOURS[n % len(COLOURS)], size=(30 + n, 24))
        queries = []
        for n in range(images_per_split - 2):
            reference, target = names[n], names[n + 1]
            members = [names[(n + k) % images_per_split] for k in range(6)]
            query = {"pairid": pairid, "reference": reference, "caption": f"make it number {n + 1}.",
                     "img_set": {"id": n, "members": members, "reference_rank": 0}}
            if split != "test1":
                query["target_hard"] = target
                query["target_soft"] = {target: 1.0, names[n + 2]: 0.5, names[(n + 3) % images_per_split]: -1.0}
                query["img_set"]["target_rank"] = 1
            elif n == 1:
                query["caption"] = " "
            queries.append(query)
            pairid += 1
        write_json(root / "cirr" / "image_splits" / f"split.rc2.{split}.json", paths)
        write_json(root / "cirr" / "captions" / f"cap.rc2.{split}.json", queries)
    return root


def real_cirr(shared: Path, root: Path) -> Path:
    """The real CIRR annotation files of ``shared`` under ``root/cirr`` and an empty placeholder file for every val
    and test1 image (enough for the readers, which never decode them)."""
    for folder in ("captions", "image_splits"):
        shutil.copytree(shared / folder, root / "cirr" / folder)
    for split in ("val", "test1"):
        paths = json.loads((root / "cirr" / "image_splits" / f"split.rc2.{split}.json").read_text())
        for relative in paths.values():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return root
