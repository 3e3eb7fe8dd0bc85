"""Image preprocessing: the target-pad transform of CLIP4Cir, or the encoder's own transform.

Target-pad keeps a garment whole: an image more elongated than ``target_ratio`` (max side / min
side) is padded with black to that ratio before the encoder's resize and centre crop, so the crop
cuts no sleeve or hem off. Images already within the ratio pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from cirlab.errors import ConfigError

PREPROCESS_KINDS: tuple[str, ...] = ("targetpad", "encoder")
DEFAULT_TARGET_RATIO = 1.25


class TargetPad:
    """Pad a PIL image with black to aspect ratio ``target_ratio`` when it is more elongated."""

    def __init__(self, target_ratio: float = DEFAULT_TARGET_RATIO) -> None:
        if target_ratio < 1.0:
            raise ConfigError(f"target-pad ratio must be >= 1, got {target_ratio}")
        self.target_ratio = target_ratio

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if max(width, height) / min(width, height) < self.target_ratio:
            return image
        scaled_side = max(width, height) / self.target_ratio
        pad_x = max(int((scaled_side - width) / 2), 0)
        pad_y = max(int((scaled_side - height) / 2), 0)
        padded = Image.new(image.mode, (width + 2 * pad_x, height + 2 * pad_y))
        padded.paste(image, (pad_x, pad_y))
        return padded

    def __repr__(self) -> str:
        return f"TargetPad(target_ratio={self.target_ratio})"


def build_preprocess(kind: str, encoder_transform: Callable[[Image.Image], Any],
                     target_ratio: float = DEFAULT_TARGET_RATIO) -> Callable[[Image.Image], Any]:
    """Compose the preprocessing named ``kind`` around an encoder's own transform.

    ``targetpad`` runs :class:`TargetPad` and then the encoder's resize/crop/normalise;
    ``encoder`` is the encoder's transform alone.
    """
    if kind == "encoder":
        return encoder_transform
    if kind == "targetpad":
        pad = TargetPad(target_ratio)

        def targetpad_then_encoder(image: Image.Image) -> Any:
            return encoder_transform(pad(image))

        targetpad_then_encoder.__qualname__ = f"targetpad({target_ratio})+encoder"
        return targetpad_then_encoder
    raise ConfigError(f"unknown preprocessing {kind!r}; use one of {list(PREPROCESS_KINDS)}")
