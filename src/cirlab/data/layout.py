"""Where files live in a FashionIQ-layout data set, and the names it uses.

```
ROOT/images/<image id>.jpg|.jpeg|.png
ROOT/captions/cap.<category>.<split>.json
ROOT/image_splits/split.<category>.<split>.json
ROOT/tags/asin2attr.<category>.<split>.json      (optional)
```
"""

from __future__ import annotations

from pathlib import Path

CATEGORIES: tuple[str, ...] = ("dress", "shirt", "toptee")
SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")

IMAGES_DIR = "images"
CAPTIONS_DIR = "captions"
SPLITS_DIR = "image_splits"
TAGS_DIR = "tags"


def captions_file(root: Path, category: str, split: str) -> Path:
    """Path of the caption (triplet) file of one category and split."""
    return Path(root) / CAPTIONS_DIR / f"cap.{category}.{split}.json"


def split_file(root: Path, category: str, split: str) -> Path:
    """Path of the image-split file of one category and split."""
    return Path(root) / SPLITS_DIR / f"split.{category}.{split}.json"


def tags_file(root: Path, category: str, split: str) -> Path:
    """Path of the optional attribute-tag file of one category and split."""
    return Path(root) / TAGS_DIR / f"asin2attr.{category}.{split}.json"


def images_dir(root: Path) -> Path:
    """Folder holding every image of the data set."""
    return Path(root) / IMAGES_DIR
