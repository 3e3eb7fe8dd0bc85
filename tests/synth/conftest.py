"""A tiny synthetic data set, generated once per test session and shared read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from cirlab.synth import SynthConfig, SynthSummary, generate


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    """The ``tiny`` preset written to a session folder, and its summary. Tests must not modify it."""
    root = tmp_path_factory.mktemp("synth") / "tiny"
    return root, generate(root, SynthConfig.preset("tiny"), show_progress=False)


@pytest.fixture(scope="session")
def tiny_cirr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    """The ``tiny`` preset in CIRR's layout (at the ``high`` ambiguity, so that queries have other satisfying
    images), written to a session folder, and its summary. Tests must not modify it."""
    root = tmp_path_factory.mktemp("synth") / "tiny-cirr"
    config = SynthConfig.preset("tiny").with_overrides(format="cirr", ambiguity="high")
    return root, generate(root, config, show_progress=False)
