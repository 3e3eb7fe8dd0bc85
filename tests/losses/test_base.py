"""The loss registry, build_loss's option checks, the statistics contract and the in-batch negatives helper."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.losses import (
    COMMON_STATS,
    LOSSES,
    ContrastiveLoss,
    HardNegativeNCELoss,
    Loss,
    LossOutput,
    TripletLoss,
    build_loss,
)
from cirlab.losses.base import in_batch_negatives


def test_registry_names_and_build() -> None:
    assert LOSSES.names() == ["contrastive", "hn-nce", "triplet"]
    assert isinstance(build_loss("triplet", margin=0.1), TripletLoss)
    assert isinstance(build_loss("contrastive"), ContrastiveLoss)
    assert isinstance(build_loss("hn-nce", beta=0.25), HardNegativeNCELoss)


def test_build_loss_refuses_unknown_name_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'arcface'; known: contrastive, hn-nce, triplet"):
        build_loss("arcface")
    with pytest.raises(ConfigError, match="^loss 'triplet': got an unexpected keyword argument 'logit_scale'; "
                                          "its options are: margin, distance, reduction$"):
        build_loss("triplet", logit_scale=100.0)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_named_and_described_by_its_registration(name: str) -> None:
    loss = build_loss(name)
    assert isinstance(loss, Loss) and type(loss).registry_name == name
    description = LOSSES.describe(name)
    assert description and "``" not in description


def test_options_and_defaults_come_from_the_signature() -> None:
    assert LOSSES.options("triplet") == {"margin": 0.2, "distance": "cosine", "reduction": "mean"}
    assert LOSSES.options("contrastive") == {"logit_scale": 100.0, "active_ratio": 0.01}
    assert LOSSES.options("hn-nce") == {"logit_scale": 1 / 0.07, "alpha": 1.0, "beta": 0.5, "active_ratio": 0.01}


def test_only_the_contrastive_losses_score_the_batch_targets() -> None:
    """The objective gathers the global batch's targets under torchrun for these losses, and only these."""
    assert {name for name in LOSSES.names() if LOSSES.get(name).scores_batch_targets} == {"contrastive", "hn-nce"}


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


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("mined", [True, False])
def test_every_loss_reports_what_it_declares(name: str, mined: bool) -> None:
    """The statistics contract: a loss reports only keys of its class's ``logged_stats`` (the trainer logs those)."""
    generator = torch.Generator().manual_seed(0)
    negatives = torch.randn(3, 2, 4, generator=generator) if mined else None
    output = build_loss(name)(torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator),
                              negatives)
    assert isinstance(output, LossOutput) and output.loss.ndim == 0
    declared = LOSSES.get(name).logged_stats
    assert set(output.stats) <= set(declared) and len(set(declared)) == len(declared)
    assert set(COMMON_STATS) <= set(output.stats)  # the built-in losses report all of them every step
    # detached 0-d tensors, left on the device for the engine to read back when it logs
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad for v in output.stats.values())


@pytest.mark.parametrize("name", LOSSES.names())
def test_losses_refuse_badly_shaped_inputs(name: str) -> None:
    loss = build_loss(name)
    with pytest.raises(ValueError, match="queries and positives"):
        loss(torch.zeros(3, 4), torch.zeros(3, 5), None)
    with pytest.raises(ValueError, match="negatives must be"):
        loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(2, 1, 4))
