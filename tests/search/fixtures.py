"""Tiny galleries for the search and serve tests: images on disk, feature caches, a random-init encoder.

Two kinds of feature cache are built:

* a *random* cache: Gaussian features written with ``write_cache``, well separated so that rankings
  can be compared exactly with a naive NumPy ranking; its manifest names the tiny encoder, so text
  queries work;
* an *encoded* cache: the PNGs of a tiny FashionIQ-layout folder encoded with the tiny encoder and
  target-pad preprocessing, as ``cirlab extract`` would, so that an uploaded image file lands
  exactly on its cached features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cirlab.features.cache import write_cache
from tests.builders import chain_triplets, write_split

CATEGORIES: tuple[str, ...] = ("dress", "shirt", "toptee")
DIM = 64
TINY_MODEL = "cirlab-vit-tiny"
FINGERPRINT = "tiny-test-fingerprint"


def tiny_encoder() -> Any:
    """cirlab's smallest ViT (64 px, 64-d), randomly initialised from seed 0, on the CPU."""
    from cirlab.encoders import EncoderSpec, load_encoder

    return load_encoder(EncoderSpec(model=TINY_MODEL, pretrained=None, seed=0), device="cpu")


def gallery_ids(per_category: int = 8, shared: int = 2) -> dict[str, list[str]]:
    """Val ids per category; the last ``shared`` shirt ids are also toptee ids (as in FashionIQ)."""
    ids = {c: [f"{c[0].upper()}{n:03d}" for n in range(per_category)] for c in CATEGORIES}
    if shared:
        ids["toptee"] = ids["toptee"][: per_category - shared] + ids["shirt"][-shared:]
    return ids


def cache_manifest(encoder_hash: str, preprocess: dict[str, Any] | None = None,
                   data_root: Path | None = None, **extra: Any) -> dict[str, Any]:
    """A feature-cache manifest as the extractor writes it for the tiny encoder."""
    manifest = {
        "model": TINY_MODEL, "pretrained": None, "checkpoint": None, "weights_hash": encoder_hash,
        "encoder": {"model": TINY_MODEL, "seed": 0, "source": "random"},
        "preprocess": preprocess or {"kind": "targetpad", "target_ratio": 1.25},
        "precision": "fp32", "data_fingerprint": FINGERPRINT,
    }
    if data_root is not None:
        manifest["data_root"] = str(data_root)
    manifest.update(extra)
    return manifest


def write_gallery_cache(root: Path, ids: dict[str, list[str]], features: dict[str, np.ndarray],
                        manifest: dict[str, Any], extra_ids: dict[str, np.ndarray] | None = None) -> Path:
    """A feature cache whose val split per category is ``ids`` (plus ``extra_ids`` as train images)."""
    order: list[str] = []
    for category in CATEGORIES:
        for image_id in ids[category]:
            if image_id not in order:
                order.append(image_id)
    extra_ids = extra_ids or {}
    order.extend(extra_ids)
    all_features = {**features, **extra_ids}
    matrix = np.stack([all_features[i] for i in order]).astype(np.float32)
    split_rows = {f"{c}.val": [order.index(i) for i in ids[c]] for c in CATEGORIES}
    if extra_ids:
        split_rows["dress.train"] = [order.index(i) for i in extra_ids]
    return write_cache(root, image_ids=order, image_features=matrix, split_rows=split_rows, triplets=[],
                       text_features=np.zeros((0, 4, matrix.shape[1]), np.float32), manifest=manifest)


def random_features(ids: dict[str, list[str]], dim: int = DIM, seed: int = 0) -> dict[str, np.ndarray]:
    """Gaussian features (not normalised, norms vary) for every distinct id."""
    rng = np.random.default_rng(seed)
    distinct = list(dict.fromkeys(i for c in CATEGORIES for i in ids[c]))
    return {i: (rng.standard_normal(dim) * rng.uniform(0.5, 3.0)).astype(np.float32) for i in distinct}


def write_dataset(root: Path, ids: dict[str, list[str]], seed: int = 0) -> Path:
    """A FashionIQ-layout folder with a small noise PNG per id (some elongated, to exercise target-pad)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    written = set()
    for category in CATEGORIES:
        for n, image_id in enumerate(ids[category]):
            if image_id not in written:
                height = 48 if n % 3 else 80
                pixels = rng.integers(0, 256, size=(height, 40, 3), dtype=np.uint8)
                pixels[: height // 2] //= 1 + n % 4  # some structure besides noise
                Image.fromarray(pixels).save(root / "images" / f"{image_id}.png")
                written.add(image_id)
        captions = [["is brighter", "has a pattern"]] * (len(ids[category]) - 1)
        write_split(root, category, "val", ids[category], chain_triplets(ids[category], captions))
    return root


def encode_dataset(encoder: Any, root: Path, image_ids: list[str], preprocess: dict[str, Any]) -> dict[str, np.ndarray]:
    """Encode the PNGs of ``image_ids`` as the extractor does (decode, preprocess, encode)."""
    import torch

    from cirlab.data import build_preprocess, load_image

    transform = build_preprocess(preprocess["kind"], encoder.preprocess, preprocess.get("target_ratio", 1.25))
    pixels = torch.stack([transform(load_image(root / "images" / f"{i}.png")) for i in image_ids])
    features = encoder.encode_images(pixels).cpu().numpy()
    return dict(zip(image_ids, features))
