"""``curriculum``: the schedule, stage equivalence with the plain samplers, blending and statistics."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, build_sampler

from .conftest import near_target_queries


def _sample(sampler, gallery, progress, k=6, seed=0):
    positives = torch.arange(0, 300, 20)
    queries = near_target_queries(gallery, positives, noise=0.25, seed=1)
    batch = BatchInfo(categories=gallery.categories[positives], progress=progress)
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed))


def test_schedule_switches_at_milestones(gallery) -> None:
    sampler = build_sampler("curriculum", gallery, milestones=[0.3, 0.6])
    assert [sampler.schedule(p) for p in (0.0, 0.29, 0.3, 0.59, 0.6, 1.0)] == \
        [(0, 0.0), (0, 0.0), (1, 0.0), (1, 0.0), (2, 0.0), (2, 0.0)]


def test_ramp_blends_linearly_before_each_milestone(gallery) -> None:
    sampler = build_sampler("curriculum", gallery, milestones=[0.3, 0.6], ramp=0.2)
    stage, share = sampler.schedule(0.2)
    assert stage == 0 and share == pytest.approx(0.5)
    assert sampler.schedule(0.05) == (0, 0.0)
    stage, share = sampler.schedule(0.55)
    assert stage == 1 and share == pytest.approx(0.75)


@pytest.mark.parametrize(("progress", "stage"), [(0.0, "random"), (0.4, "semi-hard"), (0.9, "hard")])
def test_each_stage_returns_what_its_sampler_returns(gallery, progress: float, stage: str) -> None:
    curriculum = build_sampler("curriculum", gallery, stage_options={"semi-hard": {"margin": 0.3}})
    options = {"margin": 0.3} if stage == "semi-hard" else {}
    expected = _sample(build_sampler(stage, gallery, **options), gallery, progress)
    assert torch.equal(_sample(curriculum, gallery, progress), expected)
    stats = curriculum.stats()
    assert stats[f"{stage}/queries"] == stats["queries"] == 15 and stats["stage"] == curriculum.stage_names.index(stage)


def test_blended_batches_split_k_between_two_stages(gallery) -> None:
    curriculum = build_sampler("curriculum", gallery, stages=["random", "hard"], milestones=[0.5], ramp=0.5)
    negatives = _sample(curriculum, gallery, progress=0.25, k=8)  # half of the way into the ramp
    hard = _sample(build_sampler("hard", gallery), gallery, 0.0, k=4)
    assert torch.equal(negatives[:, 4:], hard)  # hard takes the last 4 slots (the generator was advanced)
    stats = curriculum.stats()
    assert stats["random/negatives"] == stats["hard/negatives"] == 60 and stats["negatives"] == 120


def test_reset_clears_every_stage(gallery) -> None:
    curriculum = build_sampler("curriculum", gallery)
    _sample(curriculum, gallery, 0.0)
    curriculum.reset_stats()
    assert all(value == 0 for value in curriculum.stats().values())


@pytest.mark.parametrize(("options", "match"), [
    ({"milestones": [0.5]}, "milestones must be 2 increasing"),
    ({"milestones": [0.6, 0.3]}, "milestones must be 2 increasing"),
    ({"stages": ["random", "curriculum"], "milestones": [0.5]}, "stages must list other samplers"),
    ({"ramp": 0.5}, "ramp must lie in"),
    ({"stage_options": {"hard-ish": {}}}, "not among stages"),
    ({"stage_options": {"hard": {"margin": 0.1}}}, "negative sampler 'hard'"),
])
def test_refuses_bad_schedules(gallery, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sampler("curriculum", gallery, **options)
