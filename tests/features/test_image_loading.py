"""Decoding in workers: pixel hashes ignore file encoding, failures come back as values."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from cirlab.data.transforms import TargetPad
from cirlab.features.image_loading import DecodeFailure, ImageFiles, collate_images, pixel_hash


def to_tensor_64() -> transforms.Compose:
    return transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor()])


def test_pixel_hash_is_sha1_of_size_and_pixels(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    assert pixel_hash(image) == hashlib.sha1(b"7x5\n" + pixels.tobytes()).hexdigest()


def test_same_pixels_in_other_bytes_share_a_hash(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    image.save(tmp_path / "a.png", compress_level=1)
    image.save(tmp_path / "b.png", compress_level=9)
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert pixel_hash(a) == pixel_hash(b)
    flipped = pixels.copy()
    flipped[0, 0, 0] ^= 1
    assert pixel_hash(Image.fromarray(flipped, "RGB")) != pixel_hash(image)


def test_items_and_failures(tmp_path: Path) -> None:
    Image.new("RGB", (40, 100), (200, 10, 10)).save(tmp_path / "tall.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    files = ImageFiles([tmp_path / "tall.png", tmp_path / "bad.jpg"], to_tensor_64(), "targetpad", 1.25)
    index, tensor, digest, failure = files[0]
    with Image.open(tmp_path / "tall.png") as raw:
        expected = to_tensor_64()(TargetPad(1.25)(raw.convert("RGB")))
        assert digest == pixel_hash(raw)
    assert index == 0 and failure is None and torch.equal(tensor, expected)
    index, tensor, digest, failure = files[1]
    assert (index, tensor, digest) == (1, None, None)
    assert isinstance(failure, DecodeFailure) and failure.path.endswith("bad.jpg") and "decode" in failure.problem


def test_collate_stacks_only_decodable_images(tmp_path: Path) -> None:
    for name in ("a", "b"):
        Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / f"{name}.png")
    (tmp_path / "c.png").write_bytes(b"")
    files = ImageFiles([tmp_path / n for n in ("a.png", "c.png", "b.png")], to_tensor_64(), "encoder")
    batch = collate_images([files[i] for i in range(3)])
    assert batch.rows == [0, 1, 2] and batch.pixels.shape == (2, 3, 64, 64)
    assert batch.hashes[1] is None and batch.failures[1].problem.startswith("image file is empty")


def test_workers_give_the_same_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(30 + 5 * i, 40, 3), dtype=np.uint8), "RGB").save(path)
        paths.append(path)
    files = ImageFiles(paths, to_tensor_64(), "targetpad")
    sampler = [[0, 1], [2, 3, 4]]
    inline = list(DataLoader(files, batch_sampler=sampler, collate_fn=collate_images))
    workers = list(DataLoader(files, batch_sampler=sampler, collate_fn=collate_images, num_workers=2))
    for a, b in zip(inline, workers):
        assert a.rows == b.rows and a.hashes == b.hashes and torch.equal(a.pixels, b.pixels)
