"""The Encoder wrapper: features equal open_clip's own forward passes, autocast, offline tokenizer."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from cirlab.encoders import Encoder, EncoderSpec, load_encoder


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return load_encoder(EncoderSpec(model="cirlab-vit-tiny", pretrained=None), device="auto")


def test_auto_device_is_cpu_here_and_attributes(encoder: Encoder) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert encoder.device.type == expected
    assert (encoder.dim, encoder.image_size, encoder.context_length, encoder.precision) == (64, 64, 32, "fp32")


def test_encode_images_equals_model_forward_and_is_batch_independent(encoder: Encoder) -> None:
    images = torch.randn(3, 3, 64, 64)
    features = encoder.encode_images(images)
    assert features.dtype == torch.float32 and features.shape == (3, 64) and not features.requires_grad
    with torch.no_grad():
        direct = encoder.model.encode_image(images)
    torch.testing.assert_close(features, direct)
    one_by_one = torch.cat([encoder.encode_images(images[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(features, one_by_one, atol=1e-5, rtol=1e-4)


def test_encode_texts_equals_tokenise_then_encode(encoder: Encoder) -> None:
    texts = ["Is red and has long sleeves", "Is shorter", ""]
    features = encoder.encode_texts(texts)
    tokens = open_clip.get_tokenizer("cirlab-vit-tiny")(texts)
    assert tokens.shape == (3, 32)
    with torch.no_grad():
        torch.testing.assert_close(features, encoder.model.encode_text(tokens))
    assert encoder.encode_texts([]).shape == (0, 64)


def test_tokenizer_works_offline_with_bundled_vocabulary(encoder: Encoder) -> None:
    tokens = encoder.tokenizer(["is red and has long sleeves"])[0]
    ids = [int(t) for t in tokens if t != 0][1:-1]  # drop start/end of text and padding
    assert open_clip.decode(torch.tensor(ids)).strip() == "is red and has long sleeves"


def test_long_captions_are_truncated_to_the_context(encoder: Encoder) -> None:
    long_text = " ".join(["very"] * 100)
    tokens = encoder.tokenizer([long_text])
    assert tokens.shape == (1, 32)
    assert encoder.encode_texts([long_text]).shape == (1, 64)


def test_bf16_autocast_close_to_fp32() -> None:
    spec = EncoderSpec(model="cirlab-vit-tiny", pretrained=None)
    fp32 = load_encoder(spec, device="cpu", precision="fp32")
    bf16 = load_encoder(spec, device="cpu", precision="bf16")
    images = torch.randn(4, 3, 64, 64)
    a, b = fp32.encode_images(images), bf16.encode_images(images)
    assert b.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(a, b)
    assert cosine.min() > 0.98
    assert fp32.weights_hash() == bf16.weights_hash()  # weights stay fp32


def test_describe_is_json_ready(encoder: Encoder) -> None:
    description = json.loads(json.dumps(encoder.describe()))
    assert description == {
        "model": "cirlab-vit-tiny", "pretrained": None, "checkpoint": None, "source": "random", "seed": 0,
        "weights_hash": encoder.weights_hash(), "quick_gelu": False, "dim": 64, "image_size": 64,
        "context_length": 32,
    }
    assert len(encoder.weights_hash()) == 64
