"""What every benchmark receives: device, mode, a scratch folder, seeds, and shared inputs built once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch

if TYPE_CHECKING:
    from cirlab.data.records import Triplet
    from cirlab.encoders import Encoder
    from cirlab.features.cache import FeatureCache

T = TypeVar("T")

#: The small encoder every image-loading benchmark uses (random weights, 64-d, 64 px).
TINY_MODEL = "cirlab-vit-tiny"


@dataclass
class TinyDataset:
    """A tiny FashionIQ-layout folder of PNGs, the tiny encoder, and the feature cache made from them."""

    root: Path
    encoder: Encoder
    cache: FeatureCache
    triplets: list[Triplet]  # the train triplets, in caption-file order
    image_paths: dict[str, Path]  # image id -> file
    extract_seconds: float  # encoding time of the extraction that made the cache (images + captions)


@dataclass
class BenchContext:
    """Settings and shared state of one ``cirlab bench`` run."""

    device: torch.device
    quick: bool
    workdir: Path
    seed: int = 0
    _tiny: dict[str, TinyDataset] = field(default_factory=dict, repr=False)
    _encoders: dict[str, Encoder] = field(default_factory=dict, repr=False)

    def pick(self, full: T, quick: T) -> T:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run's seed (inputs are drawn on the CPU, then moved)."""
        return torch.Generator().manual_seed(self.seed * 1000 + offset)

    def device_generator(self, offset: int = 0) -> torch.Generator:
        """A generator on the benchmark device, for samplers."""
        return torch.Generator(device=self.device).manual_seed(self.seed * 1000 + offset)

    def encoder(self, model: str = TINY_MODEL) -> Encoder:
        """The encoder ``model`` with random weights drawn from the run's seed, loaded once."""
        if model not in self._encoders:
            from cirlab.encoders import EncoderSpec, load_encoder

            self._encoders[model] = load_encoder(EncoderSpec(model=model, pretrained=None, seed=self.seed),
                                                 device=str(self.device))
        return self._encoders[model]

    def tiny_dataset(self, model: str = TINY_MODEL) -> TinyDataset:
        """The tiny image data set and its cache made with ``model`` (random weights), built on first use.

        The folder is written once; each model gets its own feature cache.
        """
        if model not in self._tiny:
            from cirlab.bench.fixtures import write_tiny_fashioniq
            from cirlab.data import open_dataset
            from cirlab.encoders import EncoderSpec
            from cirlab.features.extract import extract_features

            images, triplets = self.pick((256, 128), (64, 48))
            root = self.workdir / "tiny-fashioniq"
            if not root.exists():
                write_tiny_fashioniq(root, images, triplets, seed=self.seed)
            spec = EncoderSpec(model=model, pretrained=None, seed=self.seed)
            cache = extract_features(root, spec, self.workdir / f"tiny-cache-{model}", batch_size=64, num_workers=0,
                                     device=str(self.device))
            timing = cache.manifest.get("timing", {})
            extract_seconds = float(timing.get("image_seconds", 0.0)) + float(timing.get("text_seconds", 0.0))
            encoder = self.encoder(model)
            data = open_dataset(root)
            paths = {image_id: data.image_path(image_id) for image_id in data.image_ids("dress", "train")}
            self._tiny[model] = TinyDataset(root=root, encoder=encoder, cache=cache,
                                            triplets=data.triplets("dress", "train"), image_paths=paths,
                                            extract_seconds=extract_seconds)
        return self._tiny[model]
