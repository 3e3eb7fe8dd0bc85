"""Learning-rate schedules against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from cirlab.training.schedule import build_scheduler, lr_factor


def test_warmup_then_cosine_by_hand():
    kwargs = {"total_steps": 10, "warmup_steps": 2, "schedule": "cosine", "min_lr_ratio": 0.0}
    assert lr_factor(0, **kwargs) == pytest.approx(0.5)
    assert lr_factor(1, **kwargs) == pytest.approx(1.0)
    assert lr_factor(2, **kwargs) == pytest.approx(1.0)  # decay starts at its top
    assert lr_factor(6, **kwargs) == pytest.approx(0.5)  # half-way through the 8 decay steps
    assert lr_factor(4, **kwargs) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))
    assert lr_factor(10, **kwargs) == pytest.approx(0.0)
    assert lr_factor(50, **kwargs) == pytest.approx(0.0)


def test_cosine_floor_and_constant():
    assert lr_factor(10, total_steps=10, warmup_steps=0, schedule="cosine", min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(5, total_steps=10, warmup_steps=0, schedule="cosine", min_lr_ratio=0.1) == pytest.approx(0.55)
    assert [lr_factor(s, total_steps=4, warmup_steps=2, schedule="constant") for s in range(4)] == [0.5, 1, 1, 1]


def test_scheduler_applies_the_factor_and_resumes_from_its_state():
    def make():
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
        return optimizer, build_scheduler(optimizer, total_steps=6, warmup_steps=1, schedule="cosine")

    optimizer, scheduler = make()
    seen = []
    for step in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        assert seen[-1] == pytest.approx(0.2 * lr_factor(step, total_steps=6, warmup_steps=1, schedule="cosine"))
        optimizer.step()
        scheduler.step()
        if step == 2:
            state = scheduler.state_dict()
    _, scheduler2 = make()
    scheduler2.load_state_dict(state)
    assert scheduler2.get_last_lr()[0] == pytest.approx(seen[3])
