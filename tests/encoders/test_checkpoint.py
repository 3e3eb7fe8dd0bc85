"""cirlab encoder checkpoints: round trip, QuickGELU, and one-line errors for broken folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cirlab.encoders import EncoderSpec, create_model, load_encoder, read_checkpoint_config, save_encoder_checkpoint
from cirlab.encoders.checkpoint import CONFIG_FILE, WEIGHTS_FILE, uses_quick_gelu
from cirlab.encoders.factory import _build
from cirlab.errors import WeightsUnavailableError


def tiny(seed: int = 5, name: str = "cirlab-vit-tiny") -> nn.Module:
    model, _, _ = create_model(EncoderSpec(model=name, pretrained=None, seed=seed))
    return model


def load_error(spec: EncoderSpec) -> str:
    with pytest.raises(WeightsUnavailableError) as info:
        create_model(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[nn.Module, Path]:
    model = tiny()
    folder = save_encoder_checkpoint(model, "cirlab-vit-tiny", tmp_path / "ckpt", extra={"epoch": 3})
    return model, folder


def test_round_trip_gives_identical_weights_and_features(saved: tuple[nn.Module, Path]) -> None:
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    config = read_checkpoint_config(folder)
    assert config["model"] == "cirlab-vit-tiny" and config["extra"] == {"epoch": 3}
    encoder = load_encoder(EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder), device="cpu")
    assert encoder.weights_hash() == config["weights_hash"]
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(encoder.encode_images(images), model.encode_image(images))
    assert encoder.describe()["checkpoint"] == str(folder) and encoder.describe()["pretrained"] is None


def test_checkpoint_overrides_pretrained_tag(saved: tuple[nn.Module, Path]) -> None:
    _, folder = saved
    spec = EncoderSpec(model="cirlab-vit-tiny", pretrained="openai", checkpoint=folder)
    model, _, _ = create_model(spec)  # the tag would fail; the checkpoint wins
    assert model is not None


def test_save_unwraps_ddp_style_wrappers(tmp_path: Path) -> None:
    class Wrapper(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    model = tiny()
    save_encoder_checkpoint(Wrapper(model), "cirlab-vit-tiny", tmp_path / "c")
    loaded, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", checkpoint=tmp_path / "c"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_quick_gelu_is_recorded_and_restored(tmp_path: Path) -> None:
    model = _build("cirlab-vit-tiny", seed=0, quick_gelu=True)
    assert uses_quick_gelu(model)
    save_encoder_checkpoint(model, "cirlab-vit-tiny", tmp_path / "q")
    assert read_checkpoint_config(tmp_path / "q")["quick_gelu"] is True
    loaded, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", checkpoint=tmp_path / "q"))
    assert uses_quick_gelu(loaded)
    tokens = torch.randint(0, 1000, (2, 32))
    with torch.no_grad():
        assert torch.equal(loaded.encode_text(tokens), model.encode_text(tokens))


def test_resave_replaces_weights_consistently(saved: tuple[nn.Module, Path]) -> None:
    _, folder = saved
    newer = tiny(seed=9)
    save_encoder_checkpoint(newer, "cirlab-vit-tiny", folder)
    loaded, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder))
    assert torch.equal(loaded.state_dict()["logit_scale"], newer.state_dict()["logit_scale"])
    assert not list(folder.glob(".*.tmp"))


def test_missing_folder_or_config(tmp_path: Path, saved: tuple[nn.Module, Path]) -> None:
    assert "not found" in load_error(EncoderSpec(model="cirlab-vit-tiny", checkpoint=tmp_path / "nowhere"))
    _, folder = saved
    (folder / CONFIG_FILE).unlink()
    assert "not a complete cirlab encoder checkpoint" in load_error(
        EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder))


def test_corrupt_weights_file(saved: tuple[nn.Module, Path]) -> None:
    _, folder = saved
    (folder / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 10)
    message = load_error(EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder))
    assert WEIGHTS_FILE in message and "cannot read weights" in message


def test_truncated_weights_file(saved: tuple[nn.Module, Path]) -> None:
    _, folder = saved
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    assert "cannot read weights" in load_error(EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder))


def test_flipped_byte_is_caught_by_the_hash(saved: tuple[nn.Module, Path]) -> None:
    _, folder = saved
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor's data: still a valid safetensors file
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    assert "do not match the hash" in load_error(EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder))


def test_architecture_name_mismatch(saved: tuple[nn.Module, Path]) -> None:
    _, folder = saved
    message = load_error(EncoderSpec(model="cirlab-rn-tiny", checkpoint=folder))
    assert "'cirlab-vit-tiny' model" in message and "'cirlab-rn-tiny'" in message


def test_weights_that_do_not_fit_the_named_architecture(tmp_path: Path) -> None:
    save_encoder_checkpoint(tiny(name="cirlab-rn-tiny"), "cirlab-vit-tiny", tmp_path / "lying")
    message = load_error(EncoderSpec(model="cirlab-vit-tiny", checkpoint=tmp_path / "lying"))
    assert "do not fit architecture 'cirlab-vit-tiny'" in message and "missing" in message


def test_malformed_config(saved: tuple[nn.Module, Path]) -> None:
    _, folder = saved
    (folder / CONFIG_FILE).write_text("{not json")
    assert "unreadable checkpoint config" in load_error(EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder))
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "something-else"}))
    assert "not a cirlab encoder checkpoint" in load_error(EncoderSpec(model="cirlab-vit-tiny", checkpoint=folder))
