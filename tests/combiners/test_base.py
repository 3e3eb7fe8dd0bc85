"""build_combiner and the shared combiner checks."""

from __future__ import annotations

import pytest
import torch

from cirlab.combiners import COMBINERS, build_combiner
from cirlab.errors import ConfigError


def test_registered_names() -> None:
    assert COMBINERS.names() == ["attention-fusion", "combiner", "sum"]


@pytest.mark.parametrize("name", ["attention-fusion", "combiner", "sum"])
def test_the_registration_names_the_combiner_and_its_saved_config(name: str) -> None:
    combiner = build_combiner(name, dim=4)
    assert type(combiner).registry_name == name and combiner.config()["name"] == name
    description = COMBINERS.describe(name)
    assert description and "``" not in description


def test_help_texts_come_from_the_registry() -> None:
    assert COMBINERS.summary().startswith("attention-fusion (Gated fusion of projected image and text features")
    assert "combiner (CLIP4Cir's Combiner:" in COMBINERS.summary()
    assert COMBINERS.options("combiner") == {"projection_dim": None, "hidden_dim": None, "dropout": 0.5}
    assert COMBINERS.options("sum") == {}


@pytest.mark.parametrize("name", ["attention-fusion", "combiner", "sum"])
def test_every_combiner_returns_unit_vectors_of_dim(name: str) -> None:
    combiner = build_combiner(name, dim=12).eval()
    out = combiner(torch.randn(5, 12), torch.randn(5, 12))
    assert out.shape == (5, 12)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    assert build_combiner(**combiner.config()).config() == combiner.config()


def test_unknown_name_and_option_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown combiner 'mlp'"):
        build_combiner("mlp", dim=8)
    with pytest.raises(ConfigError, match="^combiner 'combiner': got an unexpected keyword argument 'hiden_dim'; "
                                          "its options are: projection_dim, hidden_dim, dropout$"):
        build_combiner("combiner", dim=8, hiden_dim=3)
    with pytest.raises(ConfigError, match="its options are: none"):
        build_combiner("sum", dim=8, dropout=0.1)
    with pytest.raises(ConfigError, match="dim must be a positive integer"):
        build_combiner("sum", dim=0)


@pytest.mark.parametrize("name", ["attention-fusion", "combiner", "sum"])
def test_wrong_input_shapes_are_refused(name: str) -> None:
    combiner = build_combiner(name, dim=4)
    with pytest.raises(ValueError, match=r"shape \[B, 4\]"):
        combiner(torch.randn(2, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"shape \[B, 4\]"):
        combiner(torch.randn(2, 3), torch.randn(2, 3))
