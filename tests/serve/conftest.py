"""Fixtures of the service tests: the tiny image gallery of the search tests, an engine, an app, a client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cirlab.combiners import build_combiner
from cirlab.features.cache import FeatureCache
from cirlab.search import GalleryIndex, SearchEngine
from cirlab.serve import create_app

from ..search.conftest import encoder, gallery, image_gallery  # noqa: F401 - fixtures shared with the search tests


@pytest.fixture(scope="session")
def engine(image_gallery, encoder):  # noqa: F811 - pytest fixtures
    """A sum-combiner engine over the encoded PNG gallery."""
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
