"""The Euclidean distance: hand values, the normalize option and its conversion from unit cosines."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance

from cirlab.distances import EuclideanDistance


def test_hand_values() -> None:
    x = torch.tensor([[3.0, 4.0]])
    y = torch.tensor([[1.0, 0.0]])
    # normalised: (0.6, 0.8) vs (1, 0) -> sqrt(0.16 + 0.64)
    assert EuclideanDistance().pairwise(x, y).item() == pytest.approx(math.sqrt(0.8), abs=1e-5)
    assert EuclideanDistance(normalize=False).pairwise(x, y).item() == pytest.approx(math.sqrt(4 + 16), abs=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_matrix_equals_pytorch_metric_learning(normalize: bool) -> None:
    generator = torch.Generator().manual_seed(4)
    x, y = torch.randn(4, 6, generator=generator), torch.randn(5, 6, generator=generator)
    expected = LpDistance(p=2, power=1, normalize_embeddings=normalize)(x, y)
    assert torch.equal(EuclideanDistance(normalize=normalize).matrix(x, y), expected)


def test_unit_cosine_round_trip_and_rounding_above_one() -> None:
    distance = EuclideanDistance()
    cosines = torch.linspace(-1, 1, 9, dtype=torch.float64)
    assert torch.allclose(distance.to_unit_cosine(distance.from_unit_cosine(cosines)), cosines)
    assert distance.from_unit_cosine(torch.tensor([1.0000001])).item() == 0.0


def test_config_round_trip() -> None:
    assert EuclideanDistance(normalize=False).config() == {"name": "euclidean", "normalize": False}
