"""The extraction benchmark: its baseline encodes the pixels extraction encodes, and every call is recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirlab.bench.context import BenchContext
from cirlab.bench.extraction import Extraction, forward_passes, preprocessed_images
from cirlab.bench.fixtures import write_tiny_fashioniq


class CountingEncoder:
    """Records the batch sizes it is given."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(pixels))
        return pixels.flatten(1)


def test_forward_passes_cover_every_image_in_extraction_sized_batches() -> None:
    encoder = CountingEncoder()
    forward_passes(encoder, torch.zeros(70, 3, 2, 2))
    assert encoder.batches == [32, 32, 6]


@pytest.mark.slow
def test_forward_baseline_encodes_the_pixels_extraction_encodes_and_each_call_is_fresh(tmp_path) -> None:
    ctx = BenchContext(device=torch.device("cpu"), quick=True, workdir=tmp_path)
    root = write_tiny_fashioniq(tmp_path / "data", images=6, triplets=4, width=(200, 240), height=(260, 300))
    extraction = Extraction(ctx, root, "cirlab-vit-tiny")
    extraction()
    extraction()
    assert [t["images_encoded"] for t in extraction.timings] == [6, 6]  # nothing reused from the first call
    assert all(t["texts_encoded"] == 16 and t["image_chunks_reused"] == 0 for t in extraction.timings)

    from cirlab.features.cache import FeatureCache

    cache = FeatureCache.open(tmp_path / "extract-cirlab-vit-tiny-1")
    pixels = preprocessed_images(ctx, root, "cirlab-vit-tiny")
    features = ctx.encoder("cirlab-vit-tiny").encode_images(pixels).numpy()
    rows = cache.split_rows("dress", "train")
    np.testing.assert_allclose(features, np.asarray(cache.image_features[rows]), atol=1e-4, rtol=1e-4)
