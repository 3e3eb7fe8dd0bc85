"""The parameter-free sum combiner."""

from __future__ import annotations

import math

import pytest
import torch

from cirlab.combiners import SumCombiner, build_combiner


def test_hand_computed_output() -> None:
    out = SumCombiner(dim=2)(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    assert out.tolist()[0] == pytest.approx([1 / math.sqrt(2), 1 / math.sqrt(2)])


def test_no_parameters_and_config() -> None:
    combiner = build_combiner("sum", dim=5)
    assert list(combiner.parameters()) == []
    assert combiner.config() == {"name": "sum", "dim": 5}
