"""The cache-versus-re-encoding benchmark feeds both epochs the same image features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirlab.bench.context import BenchContext
from cirlab.bench.reencode import EpochPair


@pytest.mark.slow
def test_reencoded_batches_match_the_cache(tmp_path) -> None:
    ctx = BenchContext(device=torch.device("cpu"), quick=True, workdir=tmp_path)
    pair = EpochPair(ctx, ctx.tiny_dataset(), batch_size=8)
    indices = np.array([5, 0, 17, 3])
    batch = pair.reencoded_batch(indices)
    rows = torch.from_numpy(indices)
    torch.testing.assert_close(batch.reference, pair.data.reference_features[rows], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch.targets, pair.data.gallery.features[pair.data.positives[rows]], atol=1e-4,
                               rtol=1e-4)
    # the text is one of the triplet's four caption forms, as in the cache
    forms = pair.data.text_features[rows]  # [B, 4, d]
    distance = (forms - batch.text[:, None, :]).abs().amax(dim=2).amin(dim=1)
    assert bool((distance < 1e-4).all())
    assert len(pair.triplets) == len(pair.data) == 48
