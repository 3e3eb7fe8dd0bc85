"""A tiny FashionIQ-layout data set of random images for the extraction and encoder tests.

Two categories (dress, shirt), three splits, a handful of noise images of assorted sizes (square,
tall, wide: target-pad has work to do), PNG and JPEG mixed. It also holds the cases extraction must
get right:

- ``Dshared`` appears in dress.train, dress.val and shirt.train (one image, several splits and
  categories: encoded once);
- ``Ddup`` has exactly the pixels of ``Dtrain0`` but different file bytes (another PNG compression
  level): the two must share a content hash;
- test triplets have no target.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.builders import chain_triplets, write_json, write_split

CATEGORIES = ("dress", "shirt")
SPLITS = ("train", "val", "test")
SIZES = [(48, 48), (40, 64), (72, 40), (32, 50), (64, 64), (50, 30)]


def noise_image(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Random RGB pixels with a coloured bias, so images differ in more than noise."""
    width, height = size
    base = rng.integers(0, 256, size=3)
    pixels = (rng.integers(0, 96, size=(height, width, 3)) + base) % 256
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def make_dataset(root: Path, *, images_per_split: int = 4, seed: int = 0) -> Path:
    """Write the data set described in the module notes under ``root``; return ``root``."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    counter = 0
    for category in CATEGORIES:
        for split in SPLITS:
            ids = [f"{category[0].upper()}{split}{n}" for n in range(images_per_split)]
            for image_id in ids:
                ext = ".png" if counter % 2 == 0 else ".jpg"
                noise_image(rng, SIZES[counter % len(SIZES)]).save(images / f"{image_id}{ext}")
                counter += 1
            if (category == "dress" and split in ("train", "val")) or (category == "shirt" and split == "train"):
                ids.append("Dshared")
            captions = [[f"is {category} number {n + 1}.", f" has {split} sleeves ?"] for n in range(len(ids) - 1)]
            triplets = chain_triplets(ids, captions, targets=split != "test")
            write_split(root, category, split, ids, triplets, tags={i: ["plain"] for i in ids})
    noise_image(rng, (56, 40)).save(images / "Dshared.png")
    # Ddup: the pixels of Dtrain0 (a PNG), stored with other compression → other bytes, same pixels.
    with Image.open(images / "Dtrain0.png") as original:
        original.load()
        original.save(images / "Ddup.png", compress_level=1)
        original.save(images / "Dtrain0.png", compress_level=9)
    split_path = root / "image_splits" / "split.dress.val.json"
    write_json(split_path, [*json.loads(split_path.read_text()), "Ddup"])
    return root


def corrupt_image(root: Path, image_id: str) -> Path:
    """Overwrite the file of ``image_id`` with bytes no decoder accepts; return its path."""
    path = next((root / "images").glob(f"{image_id}.*"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image" * 4)
    return path


def remove_image(root: Path, image_id: str) -> None:
    """Delete the file of ``image_id``."""
    next((root / "images").glob(f"{image_id}.*")).unlink()
