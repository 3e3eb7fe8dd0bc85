"""Distances: values against hand computation and explicit loops, broadcasting, and the config path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cirlab.errors import ConfigError
from cirlab.losses.distances import CosineDistance, EuclideanDistance, build_distance


def test_cosine_distance_hand_values() -> None:
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # cos((3,4),(1,0)) = 0.6, cos((1,0),(0,2)) = 0.
    assert CosineDistance().pairwise(x, y).tolist() == pytest.approx([0.4, 1.0])


def test_euclidean_distance_hand_values() -> None:
    x = torch.tensor([[3.0, 4.0]])
    y = torch.tensor([[1.0, 0.0]])
    # normalised: (0.6, 0.8) vs (1, 0) -> sqrt(0.16 + 0.64)
    assert EuclideanDistance().pairwise(x, y).item() == pytest.approx(math.sqrt(0.8), abs=1e-5)
    assert EuclideanDistance(normalize=False).pairwise(x, y).item() == pytest.approx(math.sqrt(4 + 16), abs=1e-5)


@pytest.mark.parametrize("distance", [CosineDistance(), EuclideanDistance()])
def test_pairwise_broadcasts_like_a_loop(distance) -> None:
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(4, 8, generator=generator)
    negatives = torch.randn(4, 3, 8, generator=generator)
    values = distance.pairwise(queries[:, None, :], negatives)
    assert values.shape == (4, 3)
    for b in range(4):
        for j in range(3):
            q, n = F.normalize(queries[b], dim=0), F.normalize(negatives[b, j], dim=0)
            expected = 1 - float(q @ n) if distance.name == "cosine" else float((q - n).norm())
            assert values[b, j].item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("distance", [CosineDistance(), EuclideanDistance()])
def test_matrix_and_from_unit_cosine_agree_with_pairwise(distance) -> None:
    generator = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(5, 6, generator=generator), dim=1)
    y = F.normalize(torch.randn(7, 6, generator=generator), dim=1)
    matrix = distance.matrix(x, y)
    for i in range(5):
        for j in range(7):
            assert matrix[i, j].item() == pytest.approx(distance.pairwise(x[i:i + 1], y[j:j + 1]).item(), abs=1e-5)
    assert torch.allclose(distance.from_unit_cosine(x @ y.T), matrix, atol=1e-5)


def test_build_distance_from_name_dict_and_object() -> None:
    assert isinstance(build_distance("cosine"), CosineDistance)
    euclidean = build_distance({"name": "euclidean", "normalize": False})
    assert isinstance(euclidean, EuclideanDistance) and euclidean.normalize is False
    assert build_distance(euclidean) is euclidean
    assert build_distance(euclidean.config()).config() == euclidean.config()


def test_build_distance_refuses_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown distance 'manhattan'"):
        build_distance("manhattan")
    with pytest.raises(ConfigError, match="bad options"):
        build_distance({"name": "cosine", "p": 3})
