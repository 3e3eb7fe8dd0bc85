"""Inputs the benchmarks measure on: clustered random features and a tiny FashionIQ-layout image folder.

Random features are drawn around a few hundred centres, the way CLIP features of one domain crowd
together; queries are placed near their targets, the way a trained combiner's queries are. This keeps
mining windows and ranks realistic, which matters for code whose cost depends on them (the semi-hard
window's size, ties in ranking).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

#: Modification texts of the tiny data set (FashionIQ-like).
CAPTIONS: tuple[str, ...] = (
    "is red and has long sleeves", "is shorter", "has a floral print", "is darker and sleeveless",
    "has stripes", "is longer and blue", "has a v-neck", "is more casual", "is white with a logo",
    "has buttons",
)


def clustered_features(size: int, dim: int, generator: torch.Generator, clusters: int = 200,
                       spread: float = 0.5) -> torch.Tensor:
    """``[size, dim]`` unit vectors: a random centre each, plus isotropic noise of ``spread`` per unit norm."""
    centres = F.normalize(torch.randn(clusters, dim, generator=generator), dim=1)
    assignment = torch.randint(0, clusters, (size,), generator=generator)
    noise = torch.randn(size, dim, generator=generator) * (spread / dim**0.5)
    return F.normalize(centres[assignment] + noise, dim=1)


def queries_near(targets: torch.Tensor, generator: torch.Generator, noise: float = 0.3) -> torch.Tensor:
    """Unit queries near ``targets`` ([B, d] unit vectors): Gaussian noise of norm about ``noise``."""
    dim = targets.shape[1]
    return F.normalize(targets + torch.randn(targets.shape, generator=generator) * (noise / dim**0.5), dim=1)


def write_tiny_fashioniq(root: Path, images: int, triplets: int, seed: int = 0, *, width: tuple[int, int] = (72, 96),
                         height: tuple[int, int] = (100, 130)) -> Path:
    """A FashionIQ-layout folder of ``images`` small PNGs (category dress, train split) and ``triplets`` triplets.

    Images are ``width`` px wide and ``height`` px high (ranges, both ends included; by default more
    elongated than the target-pad ratio, so the preprocessing pads them as it pads FashionIQ's product
    photos), with a coloured garment-like block.
    """
    rng = np.random.default_rng(seed)
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / "captions").mkdir(exist_ok=True)
    (root / "image_splits").mkdir(exist_ok=True)
    ids = [f"B{n:07d}" for n in range(images)]
    for image_id in ids:
        w, h = int(rng.integers(width[0], width[1] + 1)), int(rng.integers(height[0], height[1] + 1))
        pixels = np.full((h, w, 3), 235, dtype=np.uint8)
        colour = rng.integers(0, 256, size=3)
        top, left = int(rng.integers(5, h // 4)), int(rng.integers(5, w // 4))
        pixels[top:h - top, left:w - left] = colour
        pixels = np.clip(pixels.astype(np.int16) + rng.integers(-12, 13, size=pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(image_dir / f"{image_id}.png")
    entries = []
    for n in range(triplets):
        reference = n % images
        target = (7 * reference + 3 + n // images) % images
        if target == reference:
            target = (target + 1) % images
        captions = [CAPTIONS[int(rng.integers(len(CAPTIONS)))] for _ in range(2)]
        entries.append({"candidate": ids[reference], "target": ids[target], "captions": captions})
    (root / "image_splits" / "split.dress.train.json").write_text(json.dumps(ids))
    (root / "captions" / "cap.dress.train.json").write_text(json.dumps(entries))
    return root
