"""The synthetic benchmark in CIRR's layout (``cirlab synth --format cirr``), as CLIP4Cir reads CIRR.

The images and queries are those of the FashionIQ-layout output of the same configuration (the same
catalogue, pairs and captions, :mod:`cirlab.synth.generate`), laid out as CIRR lays out its data:

```
ROOT/cirr/captions/cap.rc2.<train|val|test1>.json     the queries
ROOT/cirr/image_splits/split.rc2.<split>.json         image name → "./train/<n>/<name>.png", "./dev/<name>.png",
                                                      "./test1/<name>.png"
ROOT/cirr/tags/tags.rc2.<split>.json                  image name → attribute phrases (a cirlab extension)
ROOT/train/<n>/, ROOT/dev/, ROOT/test1/               the images
ROOT/synth_meta.json                                  the ground truth
```

The FashionIQ layout's ``train``, ``val`` and ``test`` splits become CIRR's ``train``, ``val`` and ``test1``;
CIRR has no categories, so each split holds the garments of every category. Each query becomes one record:

* ``pairid``: one numbering over the whole data set, unique across splits and interleaved between them as
  CIRR's is (the queries of every split are numbered in one seeded random order); a caption file lists its
  queries by increasing ``pairid``.
* ``caption``: CIRR has one caption per query, so the two relative captions are joined into one sentence,
  "C1 and c2" (:func:`cirlab.data.captions.eval_caption`): the pair together pins the change down (the
  ground truth's ``covered`` attributes are those of the pair; either caption alone usually says less), and
  it is the very text the FashionIQ protocol encodes for the query, so the two layouts pose the same queries.
* ``img_set``: six similar images, the subset of the Recall_subset metric: the reference, the target and
  the four images of the split nearest to the target (same garment first, then fewest differing attributes,
  ties in a seeded random order), never an exact copy of the reference or the target (which would make the
  subset ranking a coin toss). Members are in a seeded random order (``reference_rank``, ``target_rank``:
  their positions); queries with the same six images share one ``id``.
* ``target_soft``: 1.0 for the target and its exact copies, 0.5 for every other image of the split that
  satisfies the query as well (the ground truth's rule, :func:`cirlab.synth.ambiguity.valid_targets`), and
  -1.0 for the ``img_set`` members that do not (the reference aside), as CIRR's annotators scored the images
  of a set.
* ``test1`` withholds ``target_hard``, ``target_soft`` and ``target_rank``, as CIRR's test split does;
  ``synth_meta.json`` keeps its targets.

Real CIRR has no tags; the tag files here (FashionIQ's five phrases and the garment's name, since no category
names it) let an encoder be pretrained on the benchmark's attributes, and the CIRR reader exposes them as
:meth:`~cirlab.data.cirr.CIRR.tags`.

``synth_meta.json`` describes the data set in CIRR's own terms, so that the ground-truth rules
(:mod:`cirlab.synth.ambiguity`) and the negative ledger read it unchanged: its one category is ``all``,
every image's garment kind is one more attribute, ``garment``, which no query changes; ``triplets`` holds
``all.<split>`` in caption-file order, each record with its ``pairid`` and ``valid_targets``; every image
record has its ``path`` and a family number unique over the data set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from cirlab.data.captions import eval_caption
from cirlab.data.cirr import CIRR
from cirlab.data.cirr_layout import captions_file, split_file, tags_file
from cirlab.data.dataset import SINGLE_CATEGORY
from cirlab.data.layout import CATEGORIES
from cirlab.io import atomic_write_json
from cirlab.synth.ambiguity import valid_targets
from cirlab.synth.captions import NOUNS
from cirlab.synth.catalogue import Item
from cirlab.synth.config import SynthConfig
from cirlab.synth.generate import (
    TAG_ORDER,
    Captioned,
    colour_table,
    duplicate_groups,
    image_record,
    triplet_record,
    write_images,
)
from cirlab.synth.output import stamp
from cirlab.synth.randomness import stream
from cirlab.synth.triplets import Pair
from cirlab.synth.vocabulary import ATTRIBUTES, attribute_values

#: The FashionIQ layout's splits and the CIRR splits they become.
CIRR_SPLITS: Mapping[str, str] = MappingProxyType({"train": "train", "val": "val", "test": "test1"})
#: The folder each CIRR split's images sit in (val's in ``dev/``, as in CIRR).
IMAGE_FOLDERS: Mapping[str, str] = MappingProxyType({"train": "train", "val": "dev", "test1": "test1"})
#: Training images per numbered sub-folder of ``train/`` (CIRR spreads its training images over such folders).
TRAIN_FOLDER_IMAGES = 100
#: Images of an ``img_set``.
SUBSET_SIZE = 6
#: The attribute of ``synth_meta.json`` that holds an image's garment kind (the FashionIQ layout's category).
GARMENT = "garment"
#: ``target_soft`` scores: the target (and its exact copies), other images that satisfy the query, and
#: ``img_set`` members that do not.
TARGET_SCORE, SATISFIES_SCORE, FAILS_SCORE = 1.0, 0.5, -1.0
#: Every value of each attribute over every garment kind, in first-seen order (equal values, equal codes).
ATTRIBUTE_VALUES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    attribute: tuple(dict.fromkeys(v for category in CATEGORIES for v in attribute_values(category, attribute)))
    for attribute in ATTRIBUTES})


def write_cirr(out: Path, config: SynthConfig, items: list[Item], drawn: Mapping[str, list[Captioned]], *,
               show_progress: bool) -> dict[str, Any]:
    """Write ``items`` and the queries ``drawn`` (by ``"<category>.<split>"`` of the FashionIQ layout) in CIRR's
    layout under ``out``; return the ``synth_meta.json`` record (which the caller writes last)."""
    paths = image_paths(items)
    write_images(items, config, lambda item: out / paths[item.image_id], show_progress)
    queries = number_queries(config, drawn)
    meta = cirr_meta(config, items, paths, queries)
    for split, numbered in queries.items():
        key = f"{SINGLE_CATEGORY}.{split}"
        members = sorted((item for item in items if CIRR_SPLITS[item.split] == split), key=lambda i: i.image_id)
        for record, satisfying in zip(meta["triplets"][key], valid_targets(meta, key)):
            record["valid_targets"] = satisfying
        subsets = choose_subsets(config, split, members, [pair for _, (pair, _) in numbered], meta["duplicates"])
        atomic_write_json(split_file(out, split), {item.image_id: paths[item.image_id] for item in members})
        entries = [query_entry(pairid, pair.reference.image_id, pair.target.image_id, captions.captions, subset,
                               record["valid_targets"], meta["duplicates"],
                               with_target=split in CIRR.splits_with_targets)
                   for (pairid, (pair, captions)), subset, record in zip(numbered, subsets, meta["triplets"][key])]
        atomic_write_json(captions_file(out, split), entries)
        atomic_write_json(tags_file(out, split), {item.image_id: image_tags(item) for item in members})
    return meta


def image_paths(items: Sequence[Item]) -> dict[str, str]:
    """Each image's path relative to the root, as CIRR's split files write it (``./dev/<name>.png``); training
    images fill numbered sub-folders of :data:`TRAIN_FOLDER_IMAGES` in name order."""
    paths = {}
    for split in CIRR_SPLITS.values():
        names = sorted(item.image_id for item in items if CIRR_SPLITS[item.split] == split)
        for position, name in enumerate(names):
            folder = f"train/{position // TRAIN_FOLDER_IMAGES}" if split == "train" else IMAGE_FOLDERS[split]
            paths[name] = f"./{folder}/{name}.png"
    return paths


def number_queries(config: SynthConfig, drawn: Mapping[str, list[Captioned]]) -> dict[str, list[tuple[int, Captioned]]]:
    """Per CIRR split, its queries with their ``pairid`` in increasing order: every query of the data set gets
    a distinct number, in one seeded random order over all splits."""
    everything = [(CIRR_SPLITS[key.split(".")[1]], query) for key, queries in drawn.items() for query in queries]
    order = list(range(len(everything)))
    stream(config.seed, "cirr", "pairids").shuffle(order)
    numbered: dict[str, list[tuple[int, Captioned]]] = {split: [] for split in CIRR_SPLITS.values()}
    for pairid, index in enumerate(order):
        split, query = everything[index]
        numbered[split].append((pairid, query))
    return {split: sorted(queries, key=lambda entry: entry[0]) for split, queries in numbered.items()}


def choose_subsets(config: SynthConfig, split: str, members: Sequence[Item], pairs: Sequence[Pair],
                   duplicates: Sequence[Sequence[str]]) -> list[tuple[int, list[str]]]:
    """The ``img_set`` of each pair of ``split`` (see the module notes): its id and its members in listed order.

    ``members`` are the split's images in name order; a split with fewer than six usable images gives
    smaller sets. Pairs with the same six images share the id and the order of the first of them.
    """
    rng = np.random.default_rng(stream(config.seed, "cirr", "subsets", split).getrandbits(64))
    names = [item.image_id for item in members]
    position = {name: i for i, name in enumerate(names)}
    garments = np.array([config.categories.index(item.category) for item in members], dtype=np.int64)
    values = np.array([[ATTRIBUTE_VALUES[a].index(getattr(item.garment, a)) for a in ATTRIBUTES] for item in members],
                      dtype=np.int64).reshape(len(members), len(ATTRIBUTES))
    copies = {name: group for group in duplicates for name in group}
    sets: dict[frozenset[str], tuple[int, list[str]]] = {}
    subsets = []
    for pair in pairs:
        reference, target = pair.reference.image_id, pair.target.image_id
        t = position[target]
        # other garments after the target's own; then fewest differing attributes; then a random order
        key = ((garments != garments[t]) * (len(ATTRIBUTES) + 1.0) + (values != values[t]).sum(axis=1)
               + rng.random(len(names)))
        for name in {*copies.get(reference, [reference]), *copies.get(target, [target])}:
            key[position[name]] = np.inf
        others = [names[i] for i in np.argsort(key, kind="stable")[: SUBSET_SIZE - 2] if np.isfinite(key[i])]
        chosen = [reference, target, *others]
        listed = [chosen[i] for i in rng.permutation(len(chosen))]
        subsets.append(sets.setdefault(frozenset(chosen), (len(sets), listed)))
    return subsets


def query_entry(pairid: int, reference: str, target: str, captions: Sequence[str], subset: tuple[int, list[str]],
                satisfying: Sequence[str], duplicates: Sequence[Sequence[str]], *, with_target: bool) -> dict[str, Any]:
    """One record of ``cap.rc2.<split>.json`` with its ``img_set`` (id, members); without the target's keys when
    ``with_target`` is false (test1)."""
    set_id, members = subset
    img_set: dict[str, Any] = {"id": set_id, "members": members, "reference_rank": members.index(reference)}
    entry: dict[str, Any] = {"pairid": pairid, "reference": reference}
    if with_target:
        copies = next((set(group) for group in duplicates if target in group), {target})
        soft = {target: TARGET_SCORE}
        soft.update({name: TARGET_SCORE if name in copies else SATISFIES_SCORE
                     for name in satisfying if name != target})
        soft.update({name: FAILS_SCORE for name in members if name not in soft and name != reference})
        entry.update(target_hard=target, target_soft=soft)
        img_set["target_rank"] = members.index(target)
    entry.update(caption=eval_caption(captions), img_set=img_set)
    return entry


def image_tags(item: Item) -> list[str]:
    """An image's tag phrases: FashionIQ's five (:data:`~cirlab.synth.generate.TAG_ORDER`), then the garment's name."""
    return [*item.garment.tags(), NOUNS[item.category]]


def cirr_meta(config: SynthConfig, items: Sequence[Item], paths: Mapping[str, str],
              queries: Mapping[str, list[tuple[int, Captioned]]]) -> dict[str, Any]:
    """``synth_meta.json`` in CIRR's terms (see the module notes), without the ``valid_targets`` yet."""
    family_offset, running = {}, 0
    for category in config.categories:
        family_offset[category] = running
        running += 1 + max((item.family for item in items if item.category == category), default=-1)
    images = {}
    for item in sorted(items, key=lambda i: i.image_id):
        record = image_record(item)
        record.update(category=SINGLE_CATEGORY, split=CIRR_SPLITS[item.split],
                      family=family_offset[item.category] + item.family,
                      attributes={GARMENT: item.category, **record["attributes"]}, path=paths[item.image_id])
        images[item.image_id] = record
    keys = [f"{SINGLE_CATEGORY}.{split}" for split in queries]
    counts = {key: sum(1 for r in images.values() if r["split"] == key.split(".")[1]) for key in keys}
    return {
        **stamp(config),
        "attributes": [GARMENT, *ATTRIBUTES],
        "tag_order": [*TAG_ORDER, GARMENT],
        "vocabulary": {SINGLE_CATEGORY: {GARMENT: list(config.categories), **{
            attribute: list(dict.fromkeys(v for c in config.categories for v in attribute_values(c, attribute)))
            for attribute in ATTRIBUTES}}},
        "colours": colour_table(),
        "counts": {"images": counts, "triplets": {key: len(queries[key.split(".")[1]]) for key in keys}},
        "duplicates": duplicate_groups(list(items)),
        "images": images,
        "triplets": {f"{SINGLE_CATEGORY}.{split}": [{"pairid": pairid, **triplet_record(pair, captions)}
                                                    for pairid, (pair, captions) in numbered]
                     for split, numbered in queries.items()},
    }
