"""cirlab's small model configs: shipped as open_clip JSON, registered lazily and idempotently."""

from __future__ import annotations

import json
import subprocess
import sys

import open_clip
import pytest

from cirlab.encoders import architecture_config, is_small_model, list_small_models
from cirlab.encoders.configs import CONFIG_DIR, ensure_registered


def test_small_models_listed() -> None:
    names = list_small_models()
    assert {"cirlab-vit-tiny", "cirlab-rn-tiny"} <= set(names)
    assert names == sorted(names)
    assert is_small_model("cirlab-rn-tiny") and not is_small_model("RN50x4")


@pytest.mark.parametrize("name", ["cirlab-vit-tiny", "cirlab-rn-tiny"])
def test_tiny_configs_are_64px_64d_with_a_small_text_tower(name: str) -> None:
    config = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    assert config["embed_dim"] == 64 and config["vision_cfg"]["image_size"] == 64
    text = config["text_cfg"]
    assert 128 <= text["width"] <= 256 and 2 <= text["layers"] <= 4 and text["context_length"] == 32


def test_rn_tiny_is_a_modified_resnet_and_vit_tiny_a_vit() -> None:
    assert isinstance(architecture_config("cirlab-rn-tiny")["vision_cfg"]["layers"], list)
    assert architecture_config("cirlab-vit-tiny")["vision_cfg"]["patch_size"] == 8


@pytest.mark.slow
def test_registration_is_lazy() -> None:
    """Importing cirlab.encoders (and listing names) does not touch open_clip's registry; first use does."""
    code = (
        "import open_clip, cirlab.encoders as e\n"
        "before = 'cirlab-vit-tiny' in open_clip.list_models()\n"
        "e.list_small_models()\n"
        "listed = 'cirlab-vit-tiny' in open_clip.list_models()\n"
        "e.architecture_config('cirlab-vit-tiny')\n"
        "print(before, listed, 'cirlab-vit-tiny' in open_clip.list_models())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]


def test_registration_is_idempotent() -> None:
    from open_clip import factory

    ensure_registered()
    paths = list(factory._MODEL_CONFIG_PATHS)
    ensure_registered()
    ensure_registered()
    assert paths == factory._MODEL_CONFIG_PATHS
    assert set(list_small_models()) <= set(open_clip.list_models())
