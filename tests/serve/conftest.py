"""Fixtures of the service tests: the tiny image gallery of the search tests, an engine, an app, a client."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cirlab.combiners import build_combiner
from cirlab.features.cache import INDEX_FILE, FeatureCache, write_cache
from cirlab.search import GalleryIndex, SearchEngine, build_index
from cirlab.serve import create_app

from ..search.conftest import encoder, gallery, image_gallery  # noqa: F401 - fixtures shared with the search tests

#: Caption pairs of the val triplets, alternating.
CAPTIONS = (["is brighter.", "has a pattern"], ["is darker", "has stripes"])


def val_triplets(gallery_ids: dict[str, list[str]]) -> list[tuple[str, str, str, list[str]]]:
    """``(category, reference, target, captions)`` of every val triplet: each image to the next of its category."""
    return [(category, reference, target, CAPTIONS[n % 2]) for category, ids in gallery_ids.items()
            for n, (reference, target) in enumerate(itertools.pairwise(ids))]


@pytest.fixture(scope="session")
def query_cache(tmp_path_factory, image_gallery, gallery) -> Path:  # noqa: F811
    """The encoded gallery's cache plus triplets: the val ones of :func:`val_triplets`, and some that are not queries.

    Left out of the page's validation queries: a train triplet, a val triplet whose target is withheld,
    and a dress triplet whose target is a shirt image (outside the dress gallery).
    """
    cache = FeatureCache.open(image_gallery[1])
    index = json.loads((cache.root / INDEX_FILE).read_text(encoding="utf-8"))
    row = cache.row_of
    rows = [(category, "val", reference, target, captions)
            for category, reference, target, captions in val_triplets(gallery)]
    rows += [("dress", "train", "D000", "D001", ["is red", "is long"]), ("dress", "val", "D001", None, ["x", "y"]),
             ("dress", "val", "D002", "S000", ["is a shirt", "has buttons"])]
    triplets = [{"category": category, "split": split, "file_index": n, "reference_row": row(reference),
                 "target_row": row(target) if target else -1, "captions": captions}
                for n, (category, split, reference, target, captions) in enumerate(rows)]
    return write_cache(tmp_path_factory.mktemp("queries") / "cache", image_ids=cache.image_ids,
                       image_features=np.asarray(cache.image_features), split_rows=index["split_rows"],
                       triplets=triplets, text_features=np.zeros((len(triplets), 4, cache.dim), np.float32),
                       manifest=cache.manifest, image_hashes=cache.image_hashes)


@pytest.fixture(scope="session")
def engine(query_cache, encoder):  # noqa: F811 - pytest fixtures
    """A sum-combiner engine over the encoded PNG gallery, indexed from the feature cache with triplets."""
    index = build_index(query_cache, query_cache.parent / "index", show_progress=False).out
    return SearchEngine(GalleryIndex.load(index), FeatureCache.open(query_cache), build_combiner("sum", 64),
                        encoder=encoder, device="cpu")


@pytest.fixture(scope="session")
def engine_without_triplets(image_gallery, encoder):  # noqa: F811
    """The same gallery over the index's own feature cache, which holds no triplets."""
    _, cache, index = image_gallery
    return SearchEngine(GalleryIndex.load(index), FeatureCache.open(cache), build_combiner("sum", 64),
                        encoder=encoder, device="cpu")


@pytest.fixture(scope="session")
def data_root(image_gallery):  # noqa: F811
    return image_gallery[0]


@pytest.fixture(scope="session")
def client(engine, data_root):
    """A TestClient of the app with the default limits; server errors surface as exceptions."""
    with TestClient(create_app(engine, data_root)) as test_client:
        yield test_client
