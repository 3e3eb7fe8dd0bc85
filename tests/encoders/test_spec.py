"""EncoderSpec: defaults, weight source precedence, JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cirlab.encoders import EncoderSpec
from cirlab.errors import ConfigError


def test_defaults_are_the_reference_setup() -> None:
    spec = EncoderSpec()
    assert (spec.model, spec.pretrained, spec.checkpoint) == ("RN50x4", "openai", None)
    assert spec.source == "pretrained"


def test_source_precedence() -> None:
    assert EncoderSpec(model="cirlab-vit-tiny", pretrained=None).source == "random"
    assert EncoderSpec(model="cirlab-vit-tiny", pretrained="  ").pretrained is None
    assert EncoderSpec(model="RN50x4", pretrained="openai", checkpoint=Path("ckpt")).source == "checkpoint"


@pytest.mark.parametrize("spec", [
    EncoderSpec(),
    EncoderSpec(model="cirlab-rn-tiny", pretrained=None, seed=7),
    EncoderSpec(model="cirlab-vit-tiny", pretrained=None, checkpoint=Path("/tmp/some/ckpt")),
])
def test_json_round_trip(spec: EncoderSpec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    assert EncoderSpec.from_dict(data) == spec


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="pretraind"):
        EncoderSpec.from_dict({"model": "RN50x4", "pretraind": "openai"})


def test_empty_model_name_refused() -> None:
    with pytest.raises(ConfigError):
        EncoderSpec(model="")
