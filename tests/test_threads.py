"""``passive_omp_wait``: sets OMP_WAIT_POLICY only when the user has not, and says whether it can still act."""

from __future__ import annotations

import os
import sys

import torch

from cirlab.threads import passive_omp_wait


def test_sets_passive_unless_already_set(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_omp_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_omp_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_reports_that_it_is_too_late_once_torch_is_loaded(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert torch.__name__ in sys.modules
    assert passive_omp_wait() is False


def test_acts_in_a_fresh_process_before_torch_loads():
    import subprocess

    code = ("import sys; from cirlab.threads import passive_omp_wait; import cirlab.demo, cirlab.compare; "
            "print(passive_omp_wait(), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["True", "False"]  # importing the packages does not load torch either
