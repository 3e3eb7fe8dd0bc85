"""Decoding, hashing and preprocessing images in DataLoader workers.

Each item is decoded once: the decoded RGB pixels are hashed (so exact duplicates under different ids
or re-encoded files with identical pixels share a hash) and then preprocessed for the encoder. A file
that cannot be decoded does not raise inside the worker (where the message would drown in a worker
traceback); it comes back as a :class:`DecodeFailure` and the caller applies the data policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from cirlab.data.images import DEFAULT_MAX_PIXELS, load_image
from cirlab.data.transforms import DEFAULT_TARGET_RATIO, build_preprocess
from cirlab.errors import DataError


def pixel_hash(image: Image.Image) -> str:
    """sha1 of an RGB image's size and raw pixel bytes (independent of the file's encoding)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha1(f"{rgb.width}x{rgb.height}\n".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class DecodeFailure:
    """Why one image could not be used: the file and the problem (a :class:`DataError`'s parts)."""

    path: str
    problem: str


@dataclass
class ImageBatch:
    """A collated batch: plan rows, pixels of the decodable images, and per-row hash or failure."""

    rows: list[int]
    pixels: torch.Tensor  # [n_ok, 3, H, W], the rows with a hash, in order
    hashes: list[str | None]
    failures: list[DecodeFailure | None]

    def pin_memory(self) -> ImageBatch:
        """Pin the pixels for faster host-to-GPU copies (called by DataLoader when ``pin_memory``)."""
        self.pixels = self.pixels.pin_memory()
        return self


class ImageFiles(Dataset):
    """Map-style dataset over image files: index → (index, tensor or None, hash or None, failure or None).

    The preprocessing is built inside each worker from picklable parts (the kind, the ratio and the
    encoder's transform), so the dataset works with any multiprocessing start method.
    """

    def __init__(self, paths: Sequence[Path], encoder_transform: Callable[[Image.Image], Any], kind: str,
                 target_ratio: float = DEFAULT_TARGET_RATIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.paths = list(paths)
        self.encoder_transform = encoder_transform
        self.kind = kind
        self.target_ratio = target_ratio
        self.max_pixels = max_pixels
        self._preprocess: Callable[[Image.Image], Any] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None, DecodeFailure | None]:
        if self._preprocess is None:
            self._preprocess = build_preprocess(self.kind, self.encoder_transform, self.target_ratio)
        path = self.paths[index]
        try:
            image = load_image(path, max_pixels=self.max_pixels)
        except DataError as exc:
            return index, None, None, DecodeFailure(str(exc.path), exc.problem)
        return index, self._preprocess(image), pixel_hash(image), None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_preprocess"] = None  # rebuilt in the worker; closures do not pickle
        return state


def collate_images(items: list[tuple[int, torch.Tensor | None, str | None, DecodeFailure | None]]) -> ImageBatch:
    """Stack the decodable images of a batch; keep failures as per-row values."""
    tensors = [tensor for _, tensor, _, _ in items if tensor is not None]
    pixels = torch.stack(tensors) if tensors else torch.zeros((0, 3, 1, 1))
    return ImageBatch(rows=[index for index, _, _, _ in items], pixels=pixels,
                      hashes=[h for _, _, h, _ in items], failures=[f for _, _, _, f in items])
