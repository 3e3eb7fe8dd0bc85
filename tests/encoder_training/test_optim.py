"""The optimiser's parameter groups and the cosine schedule with warmup, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cirlab.encoder_training.optim import adamw, cosine_factor, cosine_with_warmup, default_warmup


def test_cosine_factor_by_hand() -> None:
    assert [cosine_factor(s, 2, 10) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert cosine_factor(6, 2, 10) == pytest.approx(0.5)  # halfway through the 8 decay steps
    assert cosine_factor(4, 2, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_factor(10, 2, 10) == pytest.approx(0.0)
    assert cosine_factor(3, 0, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 4)))


def test_scheduler_follows_the_factor_and_resumes_from_its_state() -> None:
    param = nn.Parameter(torch.zeros(2, 2))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = cosine_with_warmup(opt, warmup_steps=3, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1 * cosine_factor(s, 3, 12) for s in range(12)])
    fresh_opt = torch.optim.SGD([param], lr=0.1)
    fresh = cosine_with_warmup(fresh_opt, warmup_steps=3, total_steps=12)
    fresh.load_state_dict(sched.state_dict())
    fresh_opt.load_state_dict(opt.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_adamw_spares_gains_biases_and_scales_from_weight_decay() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    model.scale = nn.Parameter(torch.ones([]))
    frozen = nn.Linear(2, 2)
    frozen.requires_grad_(False)
    model.frozen = frozen
    opt = adamw(model, lr=1e-3, weight_decay=0.2)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias),
                                                    id(model.scale)}


def test_default_warmup() -> None:
    assert default_warmup(1000) == 50
    assert default_warmup(3) == 1
