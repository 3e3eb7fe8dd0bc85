"""A loaded CLIP encoder ready for inference: images and texts in, float32 features out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cirlab.encoders.checkpoint import uses_quick_gelu
from cirlab.encoders.factory import architecture_config, create_model
from cirlab.encoders.hashing import state_dict_hash
from cirlab.encoders.spec import EncoderSpec
from cirlab.runtime import autocast, resolve_device


class Encoder:
    """An open_clip CLIP model on a device, with its tokenizer and evaluation image transform.

    Weights stay in fp32; ``precision`` (``fp32``, ``bf16``, ``fp16``) selects autocast for the
    forward passes, the way open_clip's own evaluation runs. Features come back in float32 and
    unnormalised (consumers normalise where their method does).
    """

    def __init__(self, model: nn.Module, preprocess: Callable, tokenizer: Callable, spec: EncoderSpec,
                 device: torch.device, precision: str) -> None:
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.precision = precision
        architecture = architecture_config(spec.model)
        self.dim: int = int(architecture["embed_dim"])
        size = getattr(model.visual, "image_size", architecture["vision_cfg"].get("image_size"))
        self.image_size: int = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.context_length: int = int(architecture["text_cfg"].get("context_length", 77))
        self._weights_hash: str | None = None

    def encode_images(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` preprocessed images → ``[B, dim]`` float32 features on :attr:`device`."""
        with torch.no_grad(), autocast(self.device, self.precision):
            features = self.model.encode_image(images.to(self.device, non_blocking=True))
        return features.float()

    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        """Tokenise and encode ``texts`` → ``[B, dim]`` float32 features on :attr:`device`."""
        if not texts:
            return torch.zeros((0, self.dim), dtype=torch.float32, device=self.device)
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            features = self.model.encode_text(tokens)
        return features.float()

    def weights_hash(self) -> str:
        """sha256 over the model's state dict (see :mod:`cirlab.encoders.hashing`); computed once."""
        if self._weights_hash is None:
            self._weights_hash = state_dict_hash(self.model.state_dict())
        return self._weights_hash

    def describe(self) -> dict[str, Any]:
        """What a manifest records about this encoder."""
        return {
            "model": self.spec.model,
            "pretrained": self.spec.pretrained if self.spec.checkpoint is None else None,
            "checkpoint": str(self.spec.checkpoint.resolve()) if self.spec.checkpoint is not None else None,
            "source": self.spec.source,
            "seed": self.spec.seed if self.spec.source == "random" else None,
            "weights_hash": self.weights_hash(),
            "quick_gelu": uses_quick_gelu(self.model),
            "dim": self.dim,
            "image_size": self.image_size,
            "context_length": self.context_length,
        }

    def __repr__(self) -> str:
        return (f"Encoder(model={self.spec.model!r}, source={self.spec.source!r}, dim={self.dim}, "
                f"image_size={self.image_size}, device={self.device}, precision={self.precision!r})")


def load_encoder(spec: EncoderSpec, device: str = "auto", precision: str = "fp32") -> Encoder:
    """Build the encoder ``spec`` describes on ``device`` (``auto``: CUDA when present, else CPU).

    Raises :class:`~cirlab.errors.WeightsUnavailableError` when the weights cannot be obtained and
    :class:`~cirlab.errors.ConfigError` for an unknown architecture, device or precision.
    """
    target = resolve_device(device)
    autocast(target, precision)  # validates the precision for this device before any loading work
    model, preprocess, tokenizer = create_model(spec)
    model.to(target)
    return Encoder(model, preprocess, tokenizer, spec, target, precision)
