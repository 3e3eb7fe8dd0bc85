"""Learning-rate schedules against hand-computed values."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from cirlab.engine.optim import (
    build_optimizer,
    build_scheduler,
    decay_groups,
    default_warmup,
    lr_factor,
    uniform_groups,
)


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


def test_adamw_spares_gains_biases_and_scales_from_weight_decay() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    model.scale = nn.Parameter(torch.ones([]))
    frozen = nn.Linear(2, 2)
    frozen.requires_grad_(False)
    model.frozen = frozen
    opt = build_optimizer(decay_groups([model], 0.2), lr=1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias),
                                                    id(model.scale)}


def test_default_warmup_is_five_percent_of_the_run() -> None:
    assert default_warmup(1000) == 50
    assert default_warmup(3) == 1


def test_uniform_groups_decay_every_trainable_parameter() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[1].requires_grad_(False)
    (group,) = uniform_groups([model], 0.1)
    assert group["weight_decay"] == 0.1 and [p.shape for p in group["params"]] == [torch.Size([4, 3]), torch.Size([4])]
    assert build_optimizer(uniform_groups([model[1]], 0.1), lr=1e-3) is None  # nothing to train


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=generator), torch.randn(16, 3, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        ((model(x) - y) ** 2).mean().backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def test_adamw_runs_fused_on_the_cpu_and_for_each_where_the_device_has_no_fused_kernel(monkeypatch) -> None:
    import cirlab.engine.optim as optim

    model = _model()
    monkeypatch.setattr(optim, "fused_device_types", lambda: frozenset({"cpu", "cuda"}))
    fused = build_optimizer(decay_groups([model], 0.1), lr=1e-3)
    assert all(g["fused"] and not g["foreach"] for g in fused.param_groups)
    monkeypatch.setattr(optim, "fused_device_types", lambda: frozenset({"cuda"}))
    foreach = build_optimizer(decay_groups([model], 0.1), lr=1e-3)
    assert all(g["foreach"] and not g["fused"] for g in foreach.param_groups)


def test_the_cpu_of_this_torch_has_a_fused_adamw() -> None:
    from cirlab.engine.optim import implementation

    assert implementation(_model().parameters()) == {"fused": True, "foreach": False}


def test_fused_and_for_each_adamw_give_the_per_parameter_loop_results_up_to_rounding(monkeypatch) -> None:
    import cirlab.engine.optim as optim

    reference = _model()
    loop = torch.optim.AdamW(decay_groups([reference], 0.1), lr=1e-2, foreach=False, fused=False)
    expected = _train(reference, loop, steps=5)
    for devices in ({"cpu"}, set()):  # fused, then for-each
        monkeypatch.setattr(optim, "fused_device_types", lambda devices=devices: frozenset(devices))
        model = _model()
        optimizer = build_optimizer(decay_groups([model], 0.1), lr=1e-2)
        assert [g["weight_decay"] for g in optimizer.param_groups] == [g["weight_decay"] for g in loop.param_groups]
        assert [[p.shape for p in g["params"]] for g in optimizer.param_groups] == \
               [[p.shape for p in g["params"]] for g in loop.param_groups]
        for got, want in zip(_train(model, optimizer, steps=5), expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_the_per_parameter_loop_resumes_in_the_engines_adamw() -> None:
    first = _model()
    loop = torch.optim.AdamW(decay_groups([first], 0.1), lr=1e-2, foreach=False, fused=False)
    _train(first, loop, steps=2)
    model = _model()
    model.load_state_dict(first.state_dict())
    optimizer = build_optimizer(decay_groups([model], 0.1), lr=1e-2)
    optimizer.load_state_dict(copy.deepcopy(loop.state_dict()))  # as read from a checkpoint file
    for got, want in zip(_train(model, optimizer, steps=3), _train(first, loop, steps=3)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
