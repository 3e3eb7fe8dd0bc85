"""Fixtures of the encoder-training tests: a tiny tagged data set, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.encoder_training.fixtures import make_tagged_fashioniq


@pytest.fixture(scope="session")
def tagged_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 train and 16 val images over two categories, with tags, captions and splits."""
    return make_tagged_fashioniq(tmp_path_factory.mktemp("tagged") / "fiq")


@pytest.fixture(scope="session")
def pretrained_checkpoint(tagged_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cirlab-vit-tiny encoder pretrained for two epochs on ``tagged_data`` (an encoder checkpoint folder)."""
    from cirlab.encoder_training.pretraining import pretrain

    out = tmp_path_factory.mktemp("pretrained") / "run"
    pretrain(tagged_data, out, model="cirlab-vit-tiny", epochs=2, lr=1e-3, batch_size=8, num_workers=0,
             tensorboard=False)
    return out
