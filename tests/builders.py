"""Builders of the small data sets the tests run on: JSON files and FashionIQ-layout folders.

A FashionIQ-layout folder holds ``images/<id>.<ext>``, ``image_splits/split.<category>.<split>.json`` (the
split's image ids), ``captions/cap.<category>.<split>.json`` (triplets with a ``candidate``, a ``target``
and two ``captions``; test triplets have no target) and, optionally, ``tags/asin2attr.<category>.<split>.json``.
:func:`write_split` writes one split's files, :func:`chain_triplets` links consecutive images of a split,
and :func:`make_fashioniq` writes a whole tiny data set of solid-colour placeholder images. Test modules
that need particular pixels (noise, drawn garments, duplicates) draw their images and write the rest
with these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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


def chain_triplets(ids: Sequence[str], captions: Sequence[list[str]], *, targets: bool = True) -> list[dict]:
    """Triplets linking each image of ``ids`` to the next one, the ``n``-th with ``captions[n]``;
    without ``targets`` (a test split) they name no target."""
    if len(captions) != len(ids) - 1:
        raise ValueError(f"{len(ids)} images make {len(ids) - 1} triplets, got {len(captions)} caption pairs")
    triplets = []
    for n, pair in enumerate(captions):
        entry = {"candidate": ids[n], "target": ids[n + 1], "captions": pair}
        if not targets:
            del entry["target"]
        triplets.append(entry)
    return triplets


def write_split(root: Path, category: str, split: str, ids: Sequence[str], triplets: Sequence[dict],
                tags: dict[str, object] | None = None) -> None:
    """The files of one split of a FashionIQ-layout folder (not its images): image ids, triplets and,
    given ``tags``, the attribute file."""
    write_json(root / "image_splits" / f"split.{category}.{split}.json", list(ids))
    write_json(root / "captions" / f"cap.{category}.{split}.json", list(triplets))
    if tags is not None:
        write_json(root / "tags" / f"asin2attr.{category}.{split}.json", tags)


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
            tags = {image_id: [["colour", str(n)], "plain"] for n, image_id in enumerate(ids)} if with_tags else None
            captions = [[f"is colour {n + 1}.", " darker "] for n in range(images_per_split - 1)]
            write_split(root, category, split, ids, chain_triplets(ids, captions, targets=split != "test"), tags)
    return root


def set_entry_key(index: int, key: str, value: object | None) -> Callable[[list], list]:
    """An edit of a list of JSON entries (a caption file): entry ``index``'s ``key`` set to ``value``, or deleted
    when ``value`` is None."""
    def edit(entries: list) -> list:
        if value is None:
            del entries[index][key]
        else:
            entries[index][key] = value
        return entries
    return edit
