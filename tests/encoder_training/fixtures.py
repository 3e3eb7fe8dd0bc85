"""A tiny FashionIQ-layout data set whose images show what their tags and captions say.

Garments are drawn with PIL: a body (tall for dresses, wide for shirts) in the tagged colour, white
stripes when striped, and side rectangles when long-sleeved. Triplets link garments of the same
category and split and their captions name the target's attributes ("is red", "has stripes"),
so a model can learn both the descriptions of pretraining and the modifications of fine-tuning.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from PIL import Image, ImageDraw

from tests.builders import write_split

COLOURS = {"red": (210, 30, 30), "blue": (30, 60, 210), "green": (30, 170, 50), "yellow": (235, 210, 40)}
PATTERNS = ("solid", "striped")
SLEEVES = ("sleeveless", "long sleeves")
CATEGORIES = ("dress", "shirt")
IMAGE_SIZE = (48, 64)  # width x height: elongated, so target-pad pads it


def garment_tags(colour: str, pattern: str, sleeves: str) -> list[str]:
    """Tag phrases in the synthetic order (colour, pattern, sleeves, length, neckline)."""
    return [colour, pattern, sleeves, "knee length", "crew neck"]


def draw_garment(category: str, colour: str, pattern: str, sleeves: str) -> Image.Image:
    """The picture of one garment."""
    image = Image.new("RGB", IMAGE_SIZE, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    fill = COLOURS[colour]
    body = (14, 8, 34, 60) if category == "dress" else (8, 16, 40, 48)
    draw.rectangle(body, fill=fill)
    if pattern == "striped":
        for y in range(body[1] + 3, body[3], 8):
            draw.rectangle((body[0], y, body[2], y + 2), fill=(255, 255, 255))
    if sleeves == "long sleeves":
        draw.rectangle((body[0] - 7, body[1], body[0] - 1, body[1] + 30), fill=fill)
        draw.rectangle((body[2] + 1, body[1], body[2] + 7, body[1] + 30), fill=fill)
    return image


def caption_for(source: tuple[str, str, str], target: tuple[str, str, str]) -> list[str]:
    """Two relative captions that name what the target is."""
    colour, pattern, sleeves = target
    first = f"is {colour}" if colour != source[0] else f"is also {colour}"
    second = ("has stripes" if pattern == "striped" else "is plain") + (
        " and long sleeves." if sleeves == "long sleeves" else " and no sleeves.")
    return [first, second]


def make_tagged_fashioniq(root: Path, *, per_split: dict[str, int] | None = None, with_tags: bool = True,
                          seed: int = 0) -> Path:
    """Write the data set to ``root``: ``per_split`` images per category (default 16 train, 8 val).

    Every split cycles through the 16 attribute combinations so that each split sees all of them.
    Each image is the reference of one triplet whose target is another image of its split; the
    first val triplet of each category has an empty first caption (FashionIQ has such triplets).
    """
    per_split = per_split or {"train": 16, "val": 8}
    rng = random.Random(seed)
    combos = list(itertools.product(COLOURS, PATTERNS, SLEEVES))
    for c_index, category in enumerate(CATEGORIES):
        for split, count in per_split.items():
            ids = [f"{category[0].upper()}{split[:2]}{n:03d}" for n in range(count)]
            attributes = {}
            for n, image_id in enumerate(ids):
                attrs = combos[(n * 5 + c_index * 3 + (split == "val") * 7) % len(combos)]
                attributes[image_id] = attrs
                path = root / "images" / f"{image_id}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                draw_garment(category, *attrs).save(path)
            triplets = []
            for n, reference in enumerate(ids):
                target = ids[(n + 1 + rng.randrange(count - 1)) % count]
                captions = caption_for(attributes[reference], attributes[target])
                if split == "val" and n == 0:
                    captions[0] = ""
                triplets.append({"candidate": reference, "target": target, "captions": captions})
            tags = {image_id: garment_tags(*attributes[image_id]) for image_id in ids} if with_tags else None
            write_split(root, category, split, ids, triplets, tags)
    return root
