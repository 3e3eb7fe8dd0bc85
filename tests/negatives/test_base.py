"""What every sampler shares: the registry, input checks, determinism, the guard and declared statistics."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import COMMON_STATS, SAMPLERS, BatchInfo, GallerySampler, NegativeSampler, build_sampler

from .conftest import naive_excluded, near_target_queries

ALL = ["category", "composition", "curriculum", "drop-pool", "hard", "mixed", "positive-aware", "random",
       "rank-window", "score-window", "semi-hard"]


def _inputs(gallery, seed=0):
    positives = torch.arange(0, 20)  # every duplicate pair of the fixture gallery
    queries = near_target_queries(gallery, positives, noise=0.05, seed=seed)  # duplicates rank among the closest
    return queries, positives, BatchInfo(categories=gallery.categories[positives], progress=0.5)


def test_registry_names() -> None:
    assert SAMPLERS.names() == ALL


@pytest.mark.parametrize("name", ALL)
def test_every_sampler_is_named_and_described_by_its_registration(gallery, name: str) -> None:
    sampler = build_sampler(name, gallery)
    assert type(sampler).registry_name == name and sampler.config()["name"] == name
    description = SAMPLERS.describe(name)
    assert description and "``" not in description
    assert {"near_duplicate_threshold", "chunk_size", "ledger_margin"} <= set(SAMPLERS.options(name))


def test_options_and_defaults_come_from_the_signature() -> None:
    assert SAMPLERS.options("hard") == {"top_m": None, "near_duplicate_threshold": 0.98, "chunk_size": None,
                                        "ledger_margin": None}
    assert "curriculum (" in SAMPLERS.summary() and "semi-hard (" in SAMPLERS.summary()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("progress", [0.1, 0.9])
def test_every_sampler_reports_exactly_what_it_declares(gallery, name: str, progress: float) -> None:
    """The statistics contract: the trainer logs ``logged_stats`` and merges ``gauge_stats`` by maximum."""
    sampler = build_sampler(name, gallery)
    cls = type(sampler)
    assert cls.logged_stats[:len(COMMON_STATS)] == COMMON_STATS and len(set(cls.logged_stats)) == len(cls.logged_stats)
    assert cls.gauge_stats <= set(cls.logged_stats)
    queries, positives, batch = _inputs(gallery)
    sampler.sample(queries, positives, BatchInfo(batch.categories, progress), 5, torch.Generator().manual_seed(2))
    assert list(sampler.stats()) == list(sampler.logged_stats)
    assert set(cls.logged_stats) <= set(sampler.logged_stats) and sampler.gauge_stats <= set(sampler.logged_stats)
    if name not in ("curriculum", "mixed"):  # only these add their parts' statistics to their class's
        assert sampler.logged_stats == cls.logged_stats and sampler.gauge_stats == cls.gauge_stats


def test_curriculum_declares_its_stages_statistics_and_its_stage_gauge(gallery) -> None:
    sampler = build_sampler("curriculum", gallery, stages=["random", "semi-hard"], milestones=[0.5])
    assert type(sampler).gauge_stats == frozenset({"stage"}) and sampler.gauge_stats == frozenset({"stage"})
    assert sampler.logged_stats == (*COMMON_STATS, "stage", *(f"random/{key}" for key in COMMON_STATS),
                                    *(f"semi-hard/{key}" for key in (*COMMON_STATS, "semi_hard_candidates")))


def test_samplers_without_own_statistics_declare_the_common_ones() -> None:
    assert GallerySampler.logged_stats == COMMON_STATS and GallerySampler.gauge_stats == frozenset()
    assert SAMPLERS.get("hard").logged_stats == COMMON_STATS and SAMPLERS.get("random").gauge_stats == frozenset()


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
    with pytest.raises(ConfigError, match="^negative sampler 'random': got an unexpected keyword argument 'margin'; "
                                          "its options are: near_duplicate_threshold, chunk_size, max_redraws, "
                                          "ledger_margin$"):
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


@pytest.mark.parametrize("name", ALL)
def test_no_sampler_serves_an_annotated_positive_of_the_target(gallery, name: str) -> None:
    """CIRR's positive ``target_soft`` images are kept out like the target, even when they are the closest items."""
    from dataclasses import replace

    from cirlab.negatives.gallery import SoftPositives

    queries, positives, batch = _inputs(gallery)
    closest = (torch.nn.functional.normalize(queries, dim=-1) @ gallery.features.T)
    closest[torch.arange(len(positives)), positives] = -2.0
    nearest = closest.topk(3, dim=1).indices  # each query's three closest items other than its target
    soft = SoftPositives.from_pairs(positives.repeat_interleave(3), nearest.reshape(-1), len(gallery))
    annotated = replace(gallery, soft_positives=soft)
    sampler = build_sampler(name, annotated, near_duplicate_threshold=None)
    negatives = sampler.sample(queries, positives, batch, 5, torch.Generator().manual_seed(0))
    assert not soft.contains(positives, negatives).any()
    assert not (negatives == positives[:, None]).any()
    plain = build_sampler(name, replace(gallery, soft_positives=None), near_duplicate_threshold=None)
    if name in ("hard", "positive-aware"):  # without the annotation they are what the hardest rules serve
        served = plain.sample(queries, positives, batch, 5, torch.Generator().manual_seed(0))
        assert soft.contains(positives, served).any()
