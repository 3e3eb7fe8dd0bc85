"""Benchmark inputs: random features and the tiny FashionIQ-layout folder."""

from __future__ import annotations

import torch

from cirlab.bench.fixtures import clustered_features, queries_near, write_tiny_fashioniq
from cirlab.data import FashionIQ, load_image


def test_clustered_features_are_unit_vectors_around_shared_centres() -> None:
    features = clustered_features(300, 32, torch.Generator().manual_seed(0), clusters=3, spread=0.3)
    assert torch.allclose(features.norm(dim=1), torch.ones(300), atol=1e-5)
    cosines = features @ features.T
    # three tight clusters: every item has about a third of the items very close to it
    close = (cosines > 0.8).sum(dim=1).float()
    assert 60 < close.mean() < 140


def test_queries_sit_near_their_targets() -> None:
    targets = clustered_features(50, 64, torch.Generator().manual_seed(1))
    queries = queries_near(targets, torch.Generator().manual_seed(2), noise=0.3)
    own = (queries * targets).sum(dim=1)
    assert torch.allclose(queries.norm(dim=1), torch.ones(50), atol=1e-5)
    assert bool((own > 0.9).all()) and bool((own < 1.0).all())


def test_tiny_fashioniq_reads_back_with_distinct_reference_and_target(tmp_path) -> None:
    root = write_tiny_fashioniq(tmp_path / "data", images=5, triplets=12, seed=3)
    data = FashionIQ(root)
    ids = data.image_ids("dress", "train")
    triplets = data.triplets("dress", "train")
    assert len(ids) == 5 and len(triplets) == 12
    assert all(t.reference != t.target and t.target in ids for t in triplets)
    image = load_image(data.image_path(ids[0]))
    width, height = image.size
    assert 72 <= width <= 96 and 100 <= height <= 130


def test_tiny_fashioniq_images_take_the_given_size_ranges(tmp_path) -> None:
    root = write_tiny_fashioniq(tmp_path / "data", images=6, triplets=2, width=(200, 202), height=(260, 261))
    data = FashionIQ(root)
    sizes = {load_image(data.image_path(i)).size for i in data.image_ids("dress", "train")}
    assert all(200 <= w <= 202 and 260 <= h <= 261 for w, h in sizes)
