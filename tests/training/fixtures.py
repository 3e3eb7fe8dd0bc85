"""Tiny feature caches for the trainer tests, written with :func:`cirlab.features.write_cache`.

:func:`make_learnable_cache` builds a cache in which the target is a fixed function of the reference
and the text: ``text = M (target - reference) + noise`` for a fixed random rotation ``M``, so that a
combiner can learn ``target ≈ reference + Mᵀ text`` while the untrained ``sum`` combiner
(``reference + text``) cannot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cirlab.features.cache import write_cache

CATEGORIES = ("dress", "shirt")


def make_learnable_cache(root: Path, *, dim: int = 24, images: dict[str, int] | None = None,
                         triplets_per_image: int = 2, text_noise: float = 0.05, duplicates: int = 4,
                         categories: tuple[str, ...] = CATEGORIES, seed: int = 0,
                         splits: tuple[str, ...] = ("train", "val")) -> Path:
    """Write a learnable cache with ``images[split]`` images per category and split.

    The first ``duplicates`` train images of each category are exact copies (same features and
    hash) of the next ones, so the trainer's duplicate groups have something to find.
    """
    images = images or {"train": 80, "val": 50}
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    centres = rng.standard_normal((len(categories), dim)) * 0.6

    image_ids: list[str] = []
    features: list[np.ndarray] = []
    hashes: list[str] = []
    split_rows: dict[str, list[int]] = {}
    triplets: list[dict] = []
    texts: list[np.ndarray] = []
    for c_index, category in enumerate(categories):
        for split in splits:
            count = images[split]
            rows = []
            block = centres[c_index] + rng.standard_normal((count, dim))
            for n in range(count):
                vector, image_hash = block[n], f"{category}-{split}-{n}"
                if split == "train" and n < duplicates:
                    vector, image_hash = block[n + duplicates], f"{category}-{split}-{n + duplicates}"
                rows.append(len(image_ids))
                image_ids.append(f"{category}_{split}_{n}")
                features.append(vector)
                hashes.append(image_hash)
            split_rows[f"{category}.{split}"] = rows
            for file_index in range(count * triplets_per_image):
                reference = rows[file_index % count]
                target = rows[int(rng.integers(count))]
                while target == reference:
                    target = rows[int(rng.integers(count))]
                change = rotation @ (features[target] - features[reference])
                forms = change[None, :] + text_noise * rng.standard_normal((4, dim)) * np.linalg.norm(change)
                triplets.append({"category": category, "split": split, "file_index": file_index,
                                 "reference_row": reference, "target_row": target,
                                 "captions": [f"change {file_index}", "and more"]})
                texts.append(forms)
    return write_cache(
        root, image_ids=image_ids, image_features=np.asarray(features, dtype=np.float32), split_rows=split_rows,
        triplets=triplets, text_features=np.asarray(texts, dtype=np.float32),
        manifest={"model": "learnable-test", "preprocess": "none", "data_fingerprint": f"learnable-{seed}"},
        image_hashes=hashes)
