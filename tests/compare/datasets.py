"""A tiny learnable feature cache with a matching FashionIQ-layout image folder, for the compare tests.

Features are random, but a combiner can learn the task: ``text = R (target - reference) + noise`` for a
fixed rotation ``R``, so ``target ≈ reference + Rᵀ text`` while the untrained ``sum`` combiner cannot
recover it. The data set folder holds one small PNG per image id (plus split and caption files), and the
cache manifest names it as ``data_root``, as extraction does, so the query figures have images to draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cirlab.features.cache import write_cache
from tests.builders import write_split

CATEGORIES = ("dress", "shirt")
SPLITS = ("train", "val", "test")


def make_comparison_data(root: Path, *, dim: int = 16, images: dict[str, int] | None = None,
                         triplets_per_image: int = 2, seed: int = 0, with_images: bool = True) -> tuple[Path, Path]:
    """Write ``root/features`` (the cache) and ``root/data`` (the images); return both paths. ``images`` gives the
    images per category of each split (default train 40, val 24); a ``test`` entry adds a test split with targets."""
    images = images or {"train": 40, "val": 24}
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    data_root, cache_root = root / "data", root / "features"
    image_ids: list[str] = []
    features: list[np.ndarray] = []
    split_rows: dict[str, list[int]] = {}
    records: list[dict] = []
    texts: list[np.ndarray] = []
    captions_per_file: dict[str, list[dict]] = {}
    for category in CATEGORIES:
        centre = rng.standard_normal(dim)
        for split in [s for s in SPLITS if s in images]:
            rows = []
            for n in range(images[split]):
                rows.append(len(image_ids))
                image_ids.append(f"{category[0].upper()}{split}{n:03d}")
                features.append(centre * 0.5 + rng.standard_normal(dim))
            split_rows[f"{category}.{split}"] = rows
            entries = []
            for file_index in range(images[split] * triplets_per_image):
                reference = rows[file_index % len(rows)]
                target = rows[int(rng.integers(len(rows)))]
                while target == reference:
                    target = rows[int(rng.integers(len(rows)))]
                change = rotation @ (features[target] - features[reference])
                texts.append(change[None, :] + 0.05 * np.linalg.norm(change) * rng.standard_normal((4, dim)))
                captions = [f"is variant {file_index}", "and a little different"]
                records.append({"category": category, "split": split, "file_index": file_index,
                                "reference_row": reference, "target_row": target, "captions": captions})
                entries.append({"candidate": image_ids[reference], "target": image_ids[target], "captions": captions})
            captions_per_file[f"{category}.{split}"] = entries
    manifest = {"model": "compare-test", "pretrained": None, "preprocess": {"kind": "none"},
                "data_fingerprint": f"compare-test-{seed}"}
    if with_images:
        _write_images(data_root, image_ids, split_rows, captions_per_file, seed)
        manifest["data_root"] = str(data_root.resolve())
    write_cache(cache_root, image_ids=image_ids, image_features=np.asarray(features, dtype=np.float32),
                split_rows=split_rows, triplets=records, text_features=np.asarray(texts, dtype=np.float32),
                manifest=manifest, image_hashes=[f"hash-{i}" for i in image_ids])
    return cache_root, data_root


def _write_images(root: Path, image_ids: list[str], split_rows: dict[str, list[int]],
                  captions: dict[str, list[dict]], seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for image_id in image_ids:
        colour = rng.integers(0, 256, size=3)
        pixels = np.broadcast_to(colour, (24, 24, 3)).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(root / "images" / f"{image_id}.png")
    for key, rows in split_rows.items():
        category, split = key.split(".")
        write_split(root, category, split, [image_ids[r] for r in rows], captions[key])
