"""The loss registry, build_loss's option checks and the in-batch negatives helper."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.losses import LOSSES, ContrastiveLoss, LossOutput, TripletLoss, build_loss
from cirlab.losses.base import in_batch_negatives


def test_registry_names_and_build() -> None:
    assert LOSSES.names() == ["contrastive", "triplet"]
    assert isinstance(build_loss("triplet", margin=0.1), TripletLoss)
    assert isinstance(build_loss("contrastive"), ContrastiveLoss)


def test_build_loss_refuses_unknown_name_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'arcface'"):
        build_loss("arcface")
    with pytest.raises(ConfigError, match="its options are: margin, distance, reduction"):
        build_loss("triplet", temperature=0.1)


def test_in_batch_negatives_match_a_loop() -> None:
    targets = torch.arange(12.0).reshape(4, 3)
    negatives = in_batch_negatives(targets)
    assert negatives.shape == (4, 3, 3)
    for i in range(4):
        expected = torch.stack([targets[j] for j in range(4) if j != i])
        assert torch.equal(negatives[i], expected)


def test_in_batch_negatives_need_two_items() -> None:
    with pytest.raises(ConfigError, match="at least 2 items"):
        in_batch_negatives(torch.zeros(1, 3))


@pytest.mark.parametrize("name", ["triplet", "contrastive"])
def test_every_loss_reports_the_common_stats(name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    output = build_loss(name)(torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator),
                              torch.randn(3, 2, 4, generator=generator))
    assert isinstance(output, LossOutput) and output.loss.ndim == 0
    assert {"active_fraction", "mean_d_pos", "mean_d_neg"} <= set(output.stats)
    assert all(isinstance(value, float) for value in output.stats.values())


@pytest.mark.parametrize("name", ["triplet", "contrastive"])
def test_losses_refuse_badly_shaped_inputs(name: str) -> None:
    loss = build_loss(name)
    with pytest.raises(ValueError, match="queries and positives"):
        loss(torch.zeros(3, 4), torch.zeros(3, 5), None)
    with pytest.raises(ValueError, match="negatives must be"):
        loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(2, 1, 4))
