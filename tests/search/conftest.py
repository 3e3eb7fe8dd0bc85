"""Session-wide tiny galleries for the search tests (built once: the encoder takes seconds to load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cirlab.search import build_index

from .fixtures import (
    cache_manifest,
    encode_dataset,
    gallery_ids,
    random_features,
    tiny_encoder,
    write_dataset,
    write_gallery_cache,
)

#: An image of the cache that is not in the val gallery (a train image).
TRAIN_ID = "X900"


@pytest.fixture(scope="session")
def encoder():
    """The tiny random-init encoder, shared by every test of the session."""
    return tiny_encoder()


@pytest.fixture(scope="session")
def gallery() -> dict[str, list[str]]:
    """Val ids per category: 8 each, two shirt images also in toptee."""
    return gallery_ids(per_category=8, shared=2)


@pytest.fixture(scope="session")
def random_cache(tmp_path_factory, encoder, gallery) -> Path:
    """A cache of well-separated random features (plus one train image) naming the tiny encoder."""
    features = random_features(gallery, seed=1)
    extra = {TRAIN_ID: np.random.default_rng(2).standard_normal(64).astype(np.float32)}
    return write_gallery_cache(tmp_path_factory.mktemp("random") / "cache", gallery, features,
                               cache_manifest(encoder.weights_hash()), extra_ids=extra)


@pytest.fixture(scope="session")
def flat_index(tmp_path_factory, random_cache) -> Path:
    """An exact index over ``random_cache``'s val images."""
    return build_index(random_cache, tmp_path_factory.mktemp("flat") / "index", show_progress=False).out


@pytest.fixture(scope="session")
def image_gallery(tmp_path_factory, encoder, gallery) -> tuple[Path, Path, Path]:
    """``(data root, cache, index)``: PNGs on disk, encoded as the extractor does, and indexed."""
    base = tmp_path_factory.mktemp("images")
    root = write_dataset(base / "data", gallery)
    preprocess = {"kind": "targetpad", "target_ratio": 1.25}
    ids = list(dict.fromkeys(i for c in gallery for i in gallery[c]))
    features = encode_dataset(encoder, root, ids, preprocess)
    cache = write_gallery_cache(base / "cache", gallery, features,
                                cache_manifest(encoder.weights_hash(), preprocess, data_root=root))
    index = build_index(cache, base / "index", show_progress=False).out
    return root, cache, index
