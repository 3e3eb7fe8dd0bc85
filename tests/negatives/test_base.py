"""What every sampler shares: the registry, input checks, determinism, the guard and statistics."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import COMMON_STATS, SAMPLERS, BatchInfo, NegativeSampler, build_sampler

from .conftest import naive_excluded, near_target_queries

ALL = ["category", "curriculum", "hard", "random", "semi-hard"]


def _inputs(gallery, seed=0):
    positives = torch.arange(0, 20)  # every duplicate pair of the fixture gallery
    queries = near_target_queries(gallery, positives, noise=0.05, seed=seed)  # duplicates rank among the closest
    return queries, positives, BatchInfo(categories=gallery.categories[positives], progress=0.5)


def test_registry_names() -> None:
    assert SAMPLERS.names() == ALL


@pytest.mark.parametrize("name", ALL)
def test_contract_guard_and_determinism(gallery, name: str) -> None:
    sampler = build_sampler(name, gallery, chunk_size=64)
    assert isinstance(sampler, NegativeSampler)
    queries, positives, batch = _inputs(gallery)
    first = sampler.sample(queries, positives, batch, 7, torch.Generator().manual_seed(5))
    assert first.shape == (20, 7) and first.dtype == torch.long
    for row, target in enumerate(positives.tolist()):
        assert not naive_excluded(gallery, target, 0.98) & set(first[row].tolist())
    again = build_sampler(name, gallery).sample(queries, positives, batch, 7, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    stats = sampler.stats()
    assert set(COMMON_STATS) <= set(stats) and stats["queries"] == 20 and stats["negatives"] == 140
    sampler.reset_stats()
    assert all(value == 0 for value in sampler.stats().values())


@pytest.mark.parametrize("name", ["hard", "random"])
def test_guard_fires_on_duplicates(gallery, name: str) -> None:
    sampler = build_sampler(name, gallery)
    sampler.sample(*_inputs(gallery), 7 if name == "hard" else 300, torch.Generator().manual_seed(0))
    stats = sampler.stats()
    assert stats["guard_exact_duplicates"] > 0 and stats["guard_near_duplicates"] > 0


@pytest.mark.parametrize("name", ALL)
def test_queries_are_taken_as_they_come(gallery, name: str) -> None:
    """Unnormalised queries that require grad (straight from a combiner) give the normalised queries' result."""
    queries, positives, batch = _inputs(gallery)
    sampler = build_sampler(name, gallery)
    expected = sampler.sample(queries, positives, batch, 3, torch.Generator().manual_seed(1))
    raw = (3.0 * queries).requires_grad_(True)
    assert torch.equal(sampler.sample(raw, positives, batch, 3, torch.Generator().manual_seed(1)), expected)
    empty = sampler.sample(queries[:0], positives[:0], BatchInfo(batch.categories[:0]), 3, torch.Generator())
    assert empty.shape == (0, 3)


def test_unknown_sampler_and_option(gallery) -> None:
    with pytest.raises(ConfigError, match="unknown negative sampler 'hardest'"):
        build_sampler("hardest", gallery)
    with pytest.raises(ConfigError, match="negative sampler 'random'.*its options are"):
        build_sampler("random", gallery, margin=0.2)
    with pytest.raises(ConfigError, match="chunk_size must be at least 1"):
        build_sampler("hard", gallery, chunk_size=0)
    with pytest.raises(ConfigError, match="needs a Gallery"):
        build_sampler("hard", torch.zeros(3, 3))


def test_bad_inputs(gallery) -> None:
    sampler = build_sampler("random", gallery)
    queries, positives, batch = _inputs(gallery)
    generator = torch.Generator()
    with pytest.raises(ValueError, match="queries must be"):
        sampler.sample(queries[:, :4], positives, batch, 3, generator)
    with pytest.raises(ValueError, match="positives must be long gallery indices"):
        sampler.sample(queries, positives + 290, batch, 3, generator)
    with pytest.raises(ValueError, match="batch.categories"):
        sampler.sample(queries, positives, BatchInfo(batch.categories[:3]), 3, generator)
    with pytest.raises(ConfigError, match="at least 1"):
        sampler.sample(queries, positives, batch, 0, generator)
    with pytest.raises(TypeError, match="torch.Generator"):
        sampler.sample(queries, positives, batch, 3, 42)
