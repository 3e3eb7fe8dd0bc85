"""The evaluation benchmark's baseline and its Recall@K reading."""

from __future__ import annotations

import torch

from cirlab.bench.evaluation import BLOCK, bare_topk, recall_from_topk


def test_bare_topk_in_blocks_equals_one_full_topk() -> None:
    generator = torch.Generator().manual_seed(0)
    queries, gallery = torch.randn(BLOCK + 6, 4, generator=generator), torch.randn(60, 4, generator=generator)
    assert torch.equal(bare_topk(queries, gallery), torch.topk(queries @ gallery.T, 50, dim=1).indices)


def test_recall_from_topk_by_hand() -> None:
    top = torch.arange(50).repeat(4, 1)  # every query's list is items 0..49 in order
    targets = torch.tensor([0, 3, 20, 99])  # ranks 0, 3, 20 and outside the list
    assert recall_from_topk(top, targets) == {1: 25.0, 5: 50.0, 10: 50.0, 50: 75.0}
