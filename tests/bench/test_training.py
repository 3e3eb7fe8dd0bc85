"""The training-step benchmark's pieces: FLOP counting and the trainer-like step."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cirlab.bench.timing import Laps
from cirlab.bench.training import (
    PHASES,
    CombinerStep,
    StepBatch,
    bf16_support,
    linear_flops,
    random_step_batch,
    triplet_loss_flops,
)
from cirlab.combiners import build_combiner
from cirlab.losses import build_loss


@pytest.mark.parametrize("name", ["combiner", "attention-fusion"])
def test_linear_flops_match_torch_flop_counter(name: str) -> None:
    combiner = build_combiner(name, 8)
    image, text = torch.randn(5, 8), torch.randn(5, 8)
    forward, backward = linear_flops(combiner, image, text)
    with FlopCounterMode(display=False) as counter:
        combiner(image, text).sum().backward()
    assert forward + backward == counter.get_total_flops()


def test_linear_flops_of_the_reference_combiner_by_hand() -> None:
    d, p, h, batch = 4, 16, 32, 3
    combiner = build_combiner("combiner", d)
    forward, backward = linear_flops(combiner, torch.randn(batch, d), torch.randn(batch, d))
    # text and image projections d->p, combiner layer 2p->h, output h->d, dynamic scalar 2p->h->1
    macs = 2 * d * p + 2 * p * h + h * d + 2 * p * h + h
    assert forward == 2 * batch * macs
    # every layer computes its weight gradient; all but the two projections (raw inputs) their input gradient
    assert backward == 2 * batch * macs + 2 * batch * (macs - 2 * d * p)


def test_triplet_loss_flops_by_hand() -> None:
    assert triplet_loss_flops(batch=2, k=3, dim=10) == 3 * 2 * 10 * (3 * 5 + 2 * 4)


def test_a_step_with_given_negatives_computes_the_triplet_loss_and_updates_the_combiner() -> None:
    torch.manual_seed(0)
    combiner = build_combiner("combiner", 8, dropout=0.0)
    loss = build_loss("triplet", margin=0.5)
    gallery = torch.nn.functional.normalize(torch.randn(20, 8), dim=1)
    batch = random_step_batch(6, 8, 20, torch.Generator().manual_seed(1), torch.device("cpu"))
    negatives = torch.randint(0, 20, (6, 3), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = loss(combiner(batch.reference, batch.text), gallery[batch.positives], gallery[negatives]).loss
    before = [p.detach().clone() for p in combiner.parameters()]
    value = CombinerStep(combiner, loss, gallery)(batch, negatives=negatives)
    assert value == pytest.approx(float(expected), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, combiner.parameters()))


def test_a_step_with_explicit_targets_reads_them_instead_of_the_gallery() -> None:
    torch.manual_seed(0)
    combiner = build_combiner("sum", 8)
    loss = build_loss("contrastive")
    gallery = torch.zeros(4, 8)  # would give a constant loss if it were read
    targets = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    batch = StepBatch(torch.randn(4, 8), torch.randn(4, 8), torch.arange(4), torch.zeros(4, dtype=torch.long),
                      targets=targets)
    expected = loss(combiner(batch.reference, batch.text), targets).loss
    assert CombinerStep(combiner, loss, gallery)(batch) == pytest.approx(float(expected), rel=1e-5)


def test_bf16_support_reports_why() -> None:
    supported, why = bf16_support(torch.device("cpu"))
    assert isinstance(supported, bool) and why


def test_the_step_uses_the_engines_adamw() -> None:
    combiner = build_combiner("combiner", 8)
    step = CombinerStep(combiner, build_loss("triplet"), torch.nn.functional.normalize(torch.randn(20, 8), dim=1))
    assert [g["fused"] for g in step.optimizer.param_groups] == [True]  # the CPU's fused kernel (torch >= 2.4)


@pytest.mark.parametrize("with_sampler", [True, False])
def test_a_step_timed_by_phase_charges_every_phase_of_the_round(with_sampler: bool) -> None:
    from cirlab.negatives import Gallery, build_sampler

    torch.manual_seed(0)
    features = torch.randn(30, 8)
    gallery = Gallery.from_raw(features, torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(3)))
    step = CombinerStep(build_combiner("combiner", 8), build_loss("triplet"), gallery.features)
    batch = random_step_batch(6, 8, 30, torch.Generator().manual_seed(1), torch.device("cpu"))
    laps = Laps()
    for _ in range(2):
        if with_sampler:
            step(batch, sampler=build_sampler("random", gallery), k=3, generator=torch.Generator().manual_seed(2),
                 laps=laps)
        else:
            step(batch, negatives=torch.randint(0, 30, (6, 3), generator=torch.Generator().manual_seed(2)), laps=laps)
    expected = set(PHASES) if with_sampler else set(PHASES) - {"sampler"}
    assert len(laps.rounds) == 2 and all(set(laps_.keys()) == expected for laps_ in laps.rounds)
    shares = laps.shares(last=1)
    assert set(shares) == expected and sum(s.value for s in shares.values()) == pytest.approx(1.0)
