"""Building models from specs: seeded random init, weight files, and one-line errors for unavailable weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cirlab.encoders import EncoderSpec, create_model, load_encoder, state_dict_hash
from cirlab.errors import ConfigError, WeightsUnavailableError


def weights_error(spec: EncoderSpec) -> str:
    with pytest.raises(WeightsUnavailableError) as info:
        create_model(spec)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["cirlab-vit-tiny", "cirlab-rn-tiny"])
def test_small_models_build_with_64d_features(name: str) -> None:
    model, preprocess, tokenizer = create_model(EncoderSpec(model=name, pretrained=None))
    assert not model.training
    from PIL import Image

    images = torch.stack([preprocess(Image.new("RGB", (90, 70), (10, 200, 30))), torch.randn(3, 64, 64)])
    tokens = tokenizer(["is red", "has long sleeves"])
    assert tokens.shape == (2, 32)
    with torch.no_grad():
        assert model.encode_image(images).shape == (2, 64)
        assert model.encode_text(tokens).shape == (2, 64)


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None, seed=0))
    assert torch.equal(torch.rand(1), expected_next)  # the caller's generator was restored
    second, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None, seed=0))
    other, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None, seed=1))
    assert state_dict_hash(first.state_dict()) == state_dict_hash(second.state_dict())
    assert state_dict_hash(first.state_dict()) != state_dict_hash(other.state_dict())


def test_train_preprocess_is_random_and_eval_is_not() -> None:
    from PIL import Image

    image = Image.new("RGB", (80, 60), (120, 30, 200))
    image.putpixel((5, 5), (0, 255, 0))
    _, eval_tf, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None))
    _, train_tf, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None), train_preprocess=True)
    assert torch.equal(eval_tf(image), eval_tf(image))
    assert eval_tf(image).shape == train_tf(image).shape == (3, 64, 64)


def test_offline_openai_weights_fail_fast_with_one_line() -> None:
    # tests/conftest.py sets HF_HUB_OFFLINE=1; no weights are cached on this machine.
    message = weights_error(EncoderSpec(model="RN50x4", pretrained="openai"))
    assert "RN50x4" in message and "openai" in message and "offline" in message


def test_unknown_tag_lists_known_tags() -> None:
    message = weights_error(EncoderSpec(model="RN50x4", pretrained="laion-nonexistent"))
    assert "laion-nonexistent" in message and "known tags: openai" in message


def test_small_model_with_a_tag_explains_random_init() -> None:
    message = weights_error(EncoderSpec(model="cirlab-vit-tiny", pretrained="openai"))
    assert "pretrained=None" in message


def test_unknown_architecture_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown encoder architecture 'RN5O'"):
        create_model(EncoderSpec(model="RN5O", pretrained=None))


def test_pretrained_weights_file_loads(tmp_path: Path) -> None:
    source, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None, seed=3))
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    loaded, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=str(path), seed=0))
    assert state_dict_hash(loaded.state_dict()) == state_dict_hash(source.state_dict())


def test_corrupt_or_mismatched_weights_file_gives_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file")
    assert str(garbage) in weights_error(EncoderSpec(model="cirlab-vit-tiny", pretrained=str(garbage)))
    other, _, _ = create_model(EncoderSpec(model="cirlab-rn-tiny", pretrained=None))
    wrong = tmp_path / "rn.pt"
    torch.save(other.state_dict(), wrong)
    assert "cirlab-vit-tiny" in weights_error(EncoderSpec(model="cirlab-vit-tiny", pretrained=str(wrong)))


def test_load_encoder_refuses_missing_gpu_and_fp16_on_cpu() -> None:
    spec = EncoderSpec(model="cirlab-vit-tiny", pretrained=None)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            load_encoder(spec, device="cuda")
    with pytest.raises(ConfigError, match="fp16"):
        load_encoder(spec, device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        load_encoder(spec, device="cpu", precision="fp8")
