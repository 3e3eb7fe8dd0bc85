"""``generate``: write a complete synthetic data set in the FashionIQ layout.

Order of work: refuse or recognise the output folder (:mod:`cirlab.synth.output`); write the
in-progress marker; draw the catalogue; render every image; choose triplets and write their
captions, the split and tag files; write ``synth_meta.json`` last and remove the marker. A rerun
with the same configuration over a complete output returns at once; over an interrupted one it
writes everything again (byte-identical files, since the output is a pure function of the
configuration).

Images are written directly rather than one atomic rename each: their completeness is vouched for
by ``synth_meta.json``, which only exists once every file before it has been written.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirlab.data.jsonfiles import read_json
from cirlab.data.layout import IMAGES_DIR, SPLITS, captions_file, split_file, tags_file
from cirlab.io import atomic_write_json
from cirlab.progress import progress
from cirlab.synth.captions import CaptionPair, relative_captions
from cirlab.synth.catalogue import Item, build_catalogue
from cirlab.synth.colours import fabric_colour
from cirlab.synth.config import SynthConfig
from cirlab.synth.output import META_FILE, PARTIAL_FILE, OutputState, output_state, stamp
from cirlab.synth.randomness import stream
from cirlab.synth.render import png_bytes, render_garment
from cirlab.synth.triplets import Pair, sample_pairs
from cirlab.synth.vocabulary import ATTRIBUTES, COLOURS, SHADES, vocabulary

#: The order of the phrases in ``tags/asin2attr.*.json``.
TAG_ORDER: tuple[str, ...] = ("colour", "pattern", "sleeves", "length", "neckline")


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote (or found already written)."""

    root: Path
    config: SynthConfig
    images: dict[str, int]  # "<category>.<split>" → images in the split file
    triplets: dict[str, int]  # "<category>.<split>" → entries in the caption file
    duplicates: list[list[str]]  # groups of ids whose image files are byte-identical (original first)
    complete_captions: float  # share of triplets whose two captions pin down every changed attribute
    reused: bool = False  # True when a complete output of the same configuration was already there
    seconds: float = 0.0
    changed_attributes: dict[int, int] = field(default_factory=dict)  # attributes changed → triplets

    @property
    def total_images(self) -> int:
        """Image files in the data set (duplicates included)."""
        return sum(self.images.values())

    def format(self) -> str:
        """A short table for the terminal."""
        verb = "found complete (nothing written)" if self.reused else f"written in {self.seconds:.1f} s"
        lines = [f"synthetic FashionIQ data set at {self.root}: {verb}",
                 f"seed {self.config.seed}, {self.config.images_per_category} images per category, "
                 f"{self.config.size} px",
                 f"{'category.split':<16}{'images':>8}{'triplets':>10}"]
        lines += [f"{key:<16}{self.images[key]:>8}{self.triplets.get(key, 0):>10}" for key in self.images]
        lines.append(f"exact duplicates: {len(self.duplicates)} groups "
                     f"({sum(len(g) for g in self.duplicates)} images)")
        lines.append(f"captions covering the whole change: {self.complete_captions:.0%}")
        return "\n".join(lines)


def generate(out: str | Path, config: SynthConfig | None = None, *, show_progress: bool = True) -> SynthSummary:
    """Write the synthetic data set of ``config`` (default preset when ``None``) into the folder ``out``.

    Raises :class:`~cirlab.errors.DataError` when ``out`` is a non-empty folder that is not an
    output of the same configuration, and :class:`~cirlab.errors.ConfigError` for a bad configuration.
    """
    started = time.perf_counter()
    config = (config or SynthConfig.preset("default")).validated()
    out = Path(out)
    state = output_state(out, config)
    if state is OutputState.COMPLETE:
        return summary_from_meta(out, config)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / PARTIAL_FILE, stamp(config))
    (out / META_FILE).unlink(missing_ok=True)

    items = build_catalogue(config)
    _write_images(out, items, config, show_progress)
    triplet_records: dict[str, list[dict[str, Any]]] = {}
    for category in config.categories:
        for split in SPLITS:
            members = [item for item in items if item.category == category and item.split == split]
            triplet_records[f"{category}.{split}"] = _write_split(out, config, category, split, members)

    meta = _meta(config, items, triplet_records)
    atomic_write_json(out / META_FILE, meta)
    (out / PARTIAL_FILE).unlink(missing_ok=True)
    return _summary(out, config, meta, reused=False, seconds=time.perf_counter() - started)


def summary_from_meta(out: Path, config: SynthConfig) -> SynthSummary:
    """The summary of a complete output, read back from its ``synth_meta.json``."""
    return _summary(out, config, read_json(out / META_FILE), reused=True, seconds=0.0)


# ------------------------------------------------------------------------------------------ writing
def _write_images(out: Path, items: list[Item], config: SynthConfig, show_progress: bool) -> None:
    folder = out / IMAGES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    copied = {item.duplicate_of for item in items if item.duplicate_of}
    kept: dict[str, bytes] = {}
    for item in progress(items, desc="drawing garments", unit="img", enabled=show_progress):
        if item.duplicate_of:
            data = kept[item.duplicate_of]
        else:
            data = png_bytes(render_garment(item.garment, item.nuisance, config.size, config.supersample))
            if item.image_id in copied:
                kept[item.image_id] = data
        (folder / f"{item.image_id}.png").write_bytes(data)


def _write_split(out: Path, config: SynthConfig, category: str, split: str,
                 members: list[Item]) -> list[dict[str, Any]]:
    """Write the split, caption and tag files of one category and split; return the triplets' records."""
    per_reference = config.train_triplets_per_image if split == "train" else config.eval_triplets_per_image
    pairs = sample_pairs(members, per_reference, stream(config.seed, "triplets", category, split))
    caption_rng = stream(config.seed, "captions", category, split)
    captioned: list[tuple[Pair, CaptionPair]] = [
        (pair, relative_captions(pair.reference.garment, pair.target.garment, caption_rng)) for pair in pairs]

    ids = sorted(item.image_id for item in members)
    atomic_write_json(split_file(out, category, split), ids)
    entries = []
    for pair, captions in captioned:
        # Unlike FashionIQ, which withholds its test targets, the synthetic benchmark writes them: a checkpoint
        # selected on val can then be reported on test (`cirlab eval --split test`).
        entries.append({"target": pair.target.image_id, "candidate": pair.reference.image_id,
                        "captions": list(captions.captions)})
    atomic_write_json(captions_file(out, category, split), entries)
    by_id = {item.image_id: item for item in members}
    atomic_write_json(tags_file(out, category, split), {i: by_id[i].garment.tags() for i in ids})
    return [{"candidate": pair.reference.image_id, "target": pair.target.image_id, "changed": list(pair.changed),
             "covered": sorted(captions.covered, key=ATTRIBUTES.index)} for pair, captions in captioned]


def _meta(config: SynthConfig, items: list[Item], triplets: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    images = {key: 0 for key in triplets}
    for item in items:
        images[f"{item.category}.{item.split}"] += 1
    groups: dict[str, list[str]] = {}
    for item in items:
        if item.duplicate_of:
            groups.setdefault(item.duplicate_of, [item.duplicate_of]).append(item.image_id)
    return {
        **stamp(config),
        "attributes": list(ATTRIBUTES),
        "tag_order": list(TAG_ORDER),
        "vocabulary": vocabulary(config.categories),
        "colours": {name: {shade: list(fabric_colour(name, shade)) for shade in SHADES} for name in COLOURS},
        "counts": {"images": images, "triplets": {key: len(records) for key, records in triplets.items()}},
        "duplicates": [groups[key] for key in sorted(groups)],
        "images": {item.image_id: _image_record(item) for item in sorted(items, key=lambda i: i.image_id)},
        "triplets": triplets,
    }


def _image_record(item: Item) -> dict[str, Any]:
    record: dict[str, Any] = {"category": item.category, "split": item.split, "family": item.family,
                              "attributes": item.garment.to_dict(), "nuisance": item.nuisance.to_dict()}
    if item.duplicate_of:
        record["duplicate_of"] = item.duplicate_of
    return record


def _summary(out: Path, config: SynthConfig, meta: dict[str, Any], *, reused: bool, seconds: float) -> SynthSummary:
    records = [r for key in meta["triplets"] for r in meta["triplets"][key]]
    complete = sum(1 for r in records if set(r["covered"]) >= set(r["changed"]))
    changed = Counter(len(r["changed"]) for r in records)
    return SynthSummary(
        root=out, config=config, images=dict(meta["counts"]["images"]), triplets=dict(meta["counts"]["triplets"]),
        duplicates=[list(g) for g in meta["duplicates"]], complete_captions=complete / max(1, len(records)),
        reused=reused, seconds=seconds, changed_attributes=dict(sorted(changed.items())))
