"""Batched encoding of held-out images and texts equals encoding them one at a time."""

from __future__ import annotations

from pathlib import Path

import torch

from cirlab.data import load_image
from cirlab.encoder_training.encoding import encode_image_files, encode_texts
from cirlab.encoders import EncoderSpec, create_model


def test_batches_give_the_single_item_features_in_order(tagged_data: Path) -> None:
    model, preprocess, tokenizer = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None))
    model.train()
    paths = sorted((tagged_data / "images").glob("*.png"))[:5]
    texts = ["a red dress", "", "a blue striped shirt with long sleeves", "a green shirt", "a dress"]
    cpu = torch.device("cpu")
    images = encode_image_files(model, paths, preprocess, device=cpu, precision="fp32", batch_size=2, num_workers=0)
    encoded_texts = encode_texts(model, tokenizer, texts, device=cpu, precision="fp32", batch_size=3)
    assert model.training  # the model's mode is restored
    model.eval()
    with torch.no_grad():
        for n, path in enumerate(paths):
            single = model.encode_image(preprocess(load_image(path)).unsqueeze(0))[0]
            torch.testing.assert_close(images[n], single, rtol=1e-4, atol=1e-5)
        for n, text in enumerate(texts):
            torch.testing.assert_close(encoded_texts[n], model.encode_text(tokenizer([text]))[0], rtol=1e-4, atol=1e-5)
