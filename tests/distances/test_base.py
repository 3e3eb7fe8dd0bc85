"""The distance contract for every registered distance, the registry and build_distance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cirlab.distances import DISTANCES, CosineDistance, Distance, EuclideanDistance, build_distance
from cirlab.errors import ConfigError

ALL = ["cosine", "euclidean"]


def test_registry_names_and_registration_names() -> None:
    assert DISTANCES.names() == ALL
    assert CosineDistance.registry_name == "cosine" and EuclideanDistance.registry_name == "euclidean"
    assert [build_distance(name).config()["name"] for name in ALL] == ALL


@pytest.mark.parametrize("name", ALL)
def test_pairwise_broadcasts_like_a_loop(name: str) -> None:
    distance = build_distance(name)
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(4, 8, generator=generator)
    negatives = torch.randn(4, 3, 8, generator=generator)
    values = distance.pairwise(queries[:, None, :], negatives)
    assert values.shape == (4, 3)
    for b in range(4):
        for j in range(3):
            q, n = F.normalize(queries[b], dim=0), F.normalize(negatives[b, j], dim=0)
            expected = 1 - float(q @ n) if name == "cosine" else float((q - n).norm())
            assert values[b, j].item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_matrix_and_from_unit_cosine_agree_with_pairwise(name: str) -> None:
    distance = build_distance(name)
    generator = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(5, 6, generator=generator), dim=1)
    y = F.normalize(torch.randn(7, 6, generator=generator), dim=1)
    matrix = distance.matrix(x, y)
    for i in range(5):
        for j in range(7):
            assert matrix[i, j].item() == pytest.approx(distance.pairwise(x[i:i + 1], y[j:j + 1]).item(), abs=1e-5)
    assert torch.allclose(distance.from_unit_cosine(x @ y.T), matrix, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_distance_decreases_with_the_unit_cosine(name: str) -> None:
    """What lets samplers mine by cosine: the closest item is the same under every distance."""
    cosines = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    assert bool((build_distance(name).from_unit_cosine(cosines).diff() < 0).all())


def test_build_distance_from_name_dict_and_object() -> None:
    assert isinstance(build_distance("cosine"), CosineDistance)
    euclidean = build_distance({"name": "euclidean", "normalize": False})
    assert isinstance(euclidean, EuclideanDistance) and euclidean.normalize is False
    assert build_distance(euclidean) is euclidean
    assert build_distance(euclidean.config()).config() == euclidean.config()


def test_build_distance_refuses_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown distance 'manhattan'; known: cosine, euclidean"):
        build_distance("manhattan")
    with pytest.raises(ConfigError, match="^distance 'cosine': got an unexpected keyword argument 'p'; "
                                          "its options are: none$"):
        build_distance({"name": "cosine", "p": 3})
    with pytest.raises(ConfigError, match="its options are: normalize$"):
        build_distance({"name": "euclidean", "normalise": True})


@pytest.mark.parametrize("name", ALL)
def test_every_distance_describes_itself(name: str) -> None:
    description = DISTANCES.describe(name)
    assert description and "``" not in description
    assert issubclass(DISTANCES.get(name), Distance)
