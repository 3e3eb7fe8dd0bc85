"""The mining benchmark's inputs and labels."""

from __future__ import annotations

import pytest
import torch

from cirlab.bench.mining import DUPLICATE_FRACTION, duplicated_gallery, size_label


@pytest.mark.parametrize(("size", "label"), [(1000, "1k"), (200_000, "200k"), (1_000_000, "1m"), (6346, "6346"),
                                             (12, "12")])
def test_size_label(size: int, label: str) -> None:
    assert size_label(size) == label


def test_duplicated_gallery_holds_exact_copies_in_shared_groups() -> None:
    gallery = duplicated_gallery(400, 16, torch.Generator().manual_seed(0), torch.device("cpu"))
    groups = gallery.duplicate_groups
    grouped = groups >= 0
    assert int(grouped.sum()) == 2 * int(400 * DUPLICATE_FRACTION / 2)
    for group in groups[grouped].unique().tolist():
        members = (groups == group).nonzero().squeeze(1)
        assert len(members) == 2
        assert torch.equal(gallery.features[members[0]], gallery.features[members[1]])
    norms = gallery.features.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
