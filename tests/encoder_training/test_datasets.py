"""Records and samples of encoder training, on the tiny tagged data set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.transforms.functional import pil_to_tensor

from cirlab.data import FashionIQ, caption_variants, load_image
from cirlab.encoder_training.datasets import (
    DescriptionPairs,
    ImageFiles,
    TripletSamples,
    described_split,
    sample_rng,
    split_triplets,
)
from cirlab.errors import DataError
from tests.encoder_training.fixtures import COLOURS


def _copy(tagged_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tagged_data, tmp_path / "fiq"))


def test_described_split_pairs_every_image_with_its_tags(tagged_data: Path) -> None:
    split = described_split(FashionIQ(tagged_data), "train")
    assert len(split.images) == 32 and split.untagged == {}
    tags = json.loads((tagged_data / "tags" / "asin2attr.shirt.train.json").read_text())
    shirt = next(item for item in split.images if item.category == "shirt")
    assert list(shirt.tags) == tags[shirt.image_id]
    assert shirt.path == tagged_data / "images" / f"{shirt.image_id}.png"
    assert shirt.description.startswith(f"a {shirt.tags[0]} {shirt.tags[1]} shirt with ")


def test_images_without_tags_are_left_out_and_counted(tagged_data: Path, tmp_path: Path) -> None:
    root = _copy(tagged_data, tmp_path)
    path = root / "tags" / "asin2attr.dress.val.json"
    tags = json.loads(path.read_text())
    dropped = sorted(tags)[:3]
    path.write_text(json.dumps({k: v for k, v in tags.items() if k not in dropped}))
    split = described_split(FashionIQ(root), "val")
    assert split.untagged == {"dress": 3}
    assert len(split.images) == 16 - 3 and not {i.image_id for i in split.images} & set(dropped)


def test_a_data_set_without_tags_is_a_one_line_error(tagged_data: Path, tmp_path: Path) -> None:
    root = _copy(tagged_data, tmp_path)
    shutil.rmtree(root / "tags")
    with pytest.raises(DataError) as info:
        described_split(FashionIQ(root), "train")
    message = str(info.value)
    assert "\n" not in message and "asin2attr.dress.train.json" in message and "tag file not found" in message


def test_description_pairs_are_fixed_per_epoch_and_vary_across_epochs(tagged_data: Path) -> None:
    images = described_split(FashionIQ(tagged_data), "train").images
    pairs = DescriptionPairs(images, pil_to_tensor, seed=3)
    first = [pairs[i][1] for i in range(len(pairs))]
    assert first == [pairs[i][1] for i in range(len(pairs))]
    pairs.set_epoch(1)
    second = [pairs[i][1] for i in range(len(pairs))]
    assert first != second
    for item, text in zip(images, first):
        assert all(tag in text for tag in item.tags)
        assert ("dress" if item.category == "dress" else "shirt") in text
    for index in range(0, len(pairs), 5):
        image, _ = pairs[index]
        assert image.shape == (3, 64, 48)
        # The image really shows the tagged colour: the garment's centre pixel (between stripes).
        assert tuple(image[:, 32, 24].tolist()) == COLOURS[images[index].tags[0]]


def test_sample_rng_is_independent_of_call_order() -> None:
    assert sample_rng(1, 2, 3).random() == sample_rng(1, 2, 3).random()
    assert sample_rng(1, 2, 3).random() != sample_rng(1, 3, 2).random()


def test_triplet_samples_draw_a_training_caption_form_and_keep_empty_captions(tagged_data: Path) -> None:
    dataset = FashionIQ(tagged_data)
    triplets = split_triplets(dataset, "val")
    samples = TripletSamples(dataset, triplets, pil_to_tensor, seed=0)
    empty = [i for i, t in enumerate(triplets) if t.captions[0] == ""]
    assert len(empty) == 2  # one per category, kept
    forms_seen = set()
    for epoch in range(12):
        samples.set_epoch(epoch)
        reference, caption, target, index = samples[empty[0]]
        assert index == empty[0]
        variants = caption_variants(triplets[empty[0]].captions)
        assert caption in variants
        forms_seen.add(variants.index(caption))
    assert len(forms_seen) >= 3
    expected_ref = pil_to_tensor(load_image(dataset.image_path(triplets[empty[0]].reference)))
    assert torch.equal(reference, expected_ref)
    assert target.shape == reference.shape


def test_image_files_keep_order(tagged_data: Path) -> None:
    paths = sorted((tagged_data / "images").glob("*.png"))[:3]
    files = ImageFiles(paths, pil_to_tensor)
    assert len(files) == 3 and files[2].shape == (3, 64, 48)
