"""Builders of small FashionIQ-layout data sets for the data-layer tests."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 200), (230, 200, 40), (20, 20, 20), (240, 240, 240)]


def write_json(path: Path, obj: object) -> None:
    """Write ``obj`` as JSON, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (24, 30)) -> None:
    """A small solid-colour image; the format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def make_fashioniq(root: Path, *, categories: tuple[str, ...] = ("dress", "shirt"), images_per_split: int = 6,
                   ext: str = ".jpg", with_tags: bool = True) -> Path:
    """A complete, valid FashionIQ-layout data set with ``images_per_split`` images per category and split.

    Ids are ``<C><split><n>`` (e.g. ``Dtrain0``); triplets link consecutive images of a split; the
    test split has no targets, as in FashionIQ.
    """
    for c_index, category in enumerate(categories):
        for split in ("train", "val", "test"):
            ids = [f"{category[0].upper()}{split}{n}" for n in range(images_per_split)]
            for n, image_id in enumerate(ids):
                write_image(root / "images" / f"{image_id}{ext}", COLOURS[(n + c_index) % len(COLOURS)])
            write_json(root / "image_splits" / f"split.{category}.{split}.json", ids)
            triplets = []
            for n in range(images_per_split - 1):
                entry = {"candidate": ids[n], "target": ids[n + 1], "captions": [f"is colour {n + 1}.", " darker "]}
                if split == "test":
                    del entry["target"]
                triplets.append(entry)
            write_json(root / "captions" / f"cap.{category}.{split}.json", triplets)
            if with_tags:
                write_json(root / "tags" / f"asin2attr.{category}.{split}.json",
                           {image_id: [["colour", str(n)], "plain"] for n, image_id in enumerate(ids)})
    return root
