"""The cosine distance: hand values and its conversion from unit cosines."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity

from cirlab.distances import CosineDistance


def test_hand_values() -> None:
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # cos((3,4),(1,0)) = 0.6, cos((1,0),(0,2)) = 0.
    assert CosineDistance().pairwise(x, y).tolist() == pytest.approx([0.4, 1.0])


def test_matrix_is_one_minus_pytorch_metric_learning_similarity() -> None:
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 6, generator=generator), torch.randn(5, 6, generator=generator)
    assert torch.equal(CosineDistance().matrix(x, y), 1.0 - CosineSimilarity()(x, y))


def test_unit_cosine_round_trip() -> None:
    cosines = torch.linspace(-1, 1, 9)
    distance = CosineDistance()
    assert torch.equal(distance.from_unit_cosine(cosines), 1.0 - cosines)
    assert torch.allclose(distance.to_unit_cosine(distance.from_unit_cosine(cosines)), cosines)
