"""Step statistics kept on the device: read back as per-step floats would have been, and device-timed spans."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cirlab.distributed import DistributedContext
from cirlab.engine.stats import Elapsed, StepRecords, Stopwatch


def test_pending_steps_read_back_as_the_floats_of_their_values_in_step_order() -> None:
    records = StepRecords(DistributedContext(), torch.device("cpu"))
    vector = torch.tensor([0.1, 0.2, 0.7], dtype=torch.float32)
    records.add({"step": 1, "lr": 0.5}, {"loss": torch.tensor(0.3), "vector": vector, "count": 3,
                                         "numpy": np.float32(0.25), "empty": torch.empty(0), "missing": None})
    records.add({"step": 2, "lr": 0.25}, {"loss": torch.tensor(float("nan")), "seconds": 1.5})
    assert len(records) == 2
    (facts1, values1), (facts2, values2) = records.read()
    assert facts1 == {"step": 1, "lr": 0.5} and facts2 == {"step": 2, "lr": 0.25}
    assert values1["loss"] == float(torch.tensor(0.3))  # the float32 value, exactly
    assert values1["vector"] == float(vector.float().mean()) and values1["count"] == 3.0
    assert values1["numpy"] == 0.25
    assert math.isnan(values1["empty"]) and math.isnan(values1["missing"])
    assert set(values1) == {"loss", "vector", "count", "numpy", "empty", "missing"}  # each step keeps its own keys
    assert math.isnan(values2["loss"]) and values2 == {"loss": values2["loss"], "seconds": 1.5}
    assert len(records) == 0 and records.read() == []


def test_a_kept_tensor_is_detached_and_reduced_when_added() -> None:
    records = StepRecords(DistributedContext(), torch.device("cpu"))
    weight = torch.tensor([2.0, 4.0], requires_grad=True)
    records.add({}, {"value": weight * 1})
    weight.data.fill_(0.0)  # a later change of the inputs does not reach the kept value
    ((_, values),) = records.read()
    assert values == {"value": 3.0}


def test_the_stopwatch_uses_the_host_clock_on_the_cpu() -> None:
    watch = Stopwatch(torch.device("cpu"))
    span = watch.stop(watch.start())
    assert isinstance(span, float) and span >= 0


class FakeEvent:
    def __init__(self, at_ms: float) -> None:
        self.at_ms, self.waited = at_ms, False

    def synchronize(self) -> None:
        self.waited = True

    def elapsed_time(self, end: FakeEvent) -> float:
        assert end.waited, "read before the device passed the end event"
        return end.at_ms - self.at_ms


def test_a_device_timed_span_waits_for_its_end_and_reads_back_in_seconds() -> None:
    span = Elapsed(FakeEvent(10.0), FakeEvent(35.0))
    assert span.seconds() == pytest.approx(0.025)
    records = StepRecords(DistributedContext(), torch.device("cpu"))
    records.add({}, {"step_time_s": Elapsed(FakeEvent(0.0), FakeEvent(500.0))})
    assert records.read()[0][1] == {"step_time_s": 0.5}
