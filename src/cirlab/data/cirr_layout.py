"""Where files live in a CIRR data set, as the data set's release and CLIP4Cir lay it out.

```
ROOT/cirr/captions/cap.rc2.<split>.json          the queries of a split (test1: no targets)
ROOT/cirr/image_splits/split.rc2.<split>.json    image name → path relative to ROOT
ROOT/<relative path>                             the images: ./train/<n>/<name>.png, ./dev/<name>.png,
                                                 ./test1/<name>.png
ROOT/cirr/tags/tags.rc2.<split>.json             optional, a cirlab extension: image name → attribute phrases
```

``<split>`` is ``train``, ``val`` or ``test1``; the val images sit in ``dev/``. The annotation files
are the ``cirr/`` folder of the data set's annotation repository; the image folders come from the
NLVR2 photos. Real CIRR has no tags; ``cirlab synth --format cirr`` writes the tag files, in
FashionIQ's tag format, so that an encoder can be pretrained on the synthetic benchmark's attributes.
"""

from __future__ import annotations

from pathlib import Path

SPLITS: tuple[str, ...] = ("train", "val", "test1")
RELEASE = "rc2"

ANNOTATIONS_DIR = "cirr"
CAPTIONS_DIR = "captions"
SPLITS_DIR = "image_splits"
TAGS_DIR = "tags"


def annotations_dir(root: Path) -> Path:
    """The folder of the annotation files (captions/ and image_splits/)."""
    return Path(root) / ANNOTATIONS_DIR


def captions_file(root: Path, split: str) -> Path:
    """Path of the caption (query) file of one split."""
    return annotations_dir(root) / CAPTIONS_DIR / f"cap.{RELEASE}.{split}.json"


def split_file(root: Path, split: str) -> Path:
    """Path of the image-split file of one split (image name → relative path)."""
    return annotations_dir(root) / SPLITS_DIR / f"split.{RELEASE}.{split}.json"


def tags_file(root: Path, split: str) -> Path:
    """Path of the optional tag file of one split (a cirlab extension; real CIRR folders lack it)."""
    return annotations_dir(root) / TAGS_DIR / f"tags.{RELEASE}.{split}.json"
