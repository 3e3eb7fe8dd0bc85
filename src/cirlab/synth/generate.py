"""``generate``: write a complete synthetic data set in the FashionIQ layout (or CIRR's).

Order of work: refuse or recognise the output folder (:mod:`cirlab.synth.output`); write the
in-progress marker; draw the catalogue and choose triplets and their captions; render every image
and write the captions, the split and tag files; write ``synth_meta.json`` last and remove the
marker. What is drawn does not depend on the layout: ``format="cirr"`` writes the same images and
queries in CIRR's layout (:mod:`cirlab.synth.cirr`). At an ambiguity level other than ``default``,
each triplet record of ``synth_meta.json`` also lists its ``valid_targets``: every image of its
gallery that satisfies it (:mod:`cirlab.synth.ambiguity`). A rerun with the same configuration over
a complete output returns at once; over an interrupted one it writes everything again
(byte-identical files, since the output is a pure function of the configuration).

Images are written directly rather than one atomic rename each: their completeness is vouched for
by ``synth_meta.json``, which only exists once every file before it has been written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirlab.data.jsonfiles import read_json
from cirlab.data.layout import IMAGES_DIR, SPLITS, captions_file, split_file, tags_file
from cirlab.io import atomic_write_json
from cirlab.progress import progress
from cirlab.synth.ambiguity import AmbiguityCount, ambiguous_queries, valid_targets
from cirlab.synth.captions import CaptionPair, draw_vague_aspect, relative_captions
from cirlab.synth.catalogue import Item, build_catalogue
from cirlab.synth.colours import fabric_colour
from cirlab.synth.config import DEFAULT_AMBIGUITY, SynthConfig
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
    images: dict[str, int]  # "<category>.<split>" → images in the split file (CIRR: "all.<split>")
    triplets: dict[str, int]  # "<category>.<split>" → entries in the caption file
    duplicates: list[list[str]]  # groups of ids whose image files are byte-identical (original first)
    complete_captions: float  # share of triplets whose two captions pin down every changed attribute
    reused: bool = False  # True when a complete output of the same configuration was already there
    seconds: float = 0.0
    changed_attributes: dict[int, int] = field(default_factory=dict)  # attributes changed → triplets
    ambiguity: dict[str, AmbiguityCount] = field(default_factory=dict)  # split → queries others satisfy too

    @property
    def total_images(self) -> int:
        """Image files in the data set (duplicates included)."""
        return sum(self.images.values())

    def format(self) -> str:
        """A short table for the terminal."""
        verb = "found complete (nothing written)" if self.reused else f"written in {self.seconds:.1f} s"
        cirr = self.config.format == "cirr"  # one category: rows are named by their split alone
        lines = [f"synthetic {'CIRR' if cirr else 'FashionIQ'} data set at {self.root}: {verb}",
                 f"seed {self.config.seed}, {self.config.images_per_category} images per category, "
                 f"{self.config.size} px, ambiguity {self.config.ambiguity}",
                 f"{'split' if cirr else 'category.split':<16}{'images':>8}{'triplets':>10}"]
        lines += [f"{key.split('.')[1] if cirr else key:<16}{self.images[key]:>8}{self.triplets.get(key, 0):>10}"
                  for key in self.images]
        lines.append(f"exact duplicates: {len(self.duplicates)} groups "
                     f"({sum(len(g) for g in self.duplicates)} images)")
        lines.append(f"captions covering the whole change: {self.complete_captions:.0%}")
        shares = ", ".join(f"{split} {count.share:.1%} ({count.share_beyond_copies:.1%})"
                           for split, count in self.ambiguity.items())
        lines.append(f"queries that another gallery image satisfies (beyond exact copies): {shares}")
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
    drawn = draw_queries(config, items)
    if config.format == "cirr":
        from cirlab.synth.cirr import write_cirr

        meta = write_cirr(out, config, items, drawn, show_progress=show_progress)
    else:
        write_images(items, config, lambda item: out / IMAGES_DIR / f"{item.image_id}.png", show_progress)
        for key, captioned in drawn.items():
            category, split = key.split(".")
            _write_split(out, category, split, [item for item in items if f"{item.category}.{item.split}" == key],
                         captioned)
        meta = fashioniq_meta(config, items, drawn)
    atomic_write_json(out / META_FILE, meta)
    (out / PARTIAL_FILE).unlink(missing_ok=True)
    return _summary(out, config, meta, reused=False, seconds=time.perf_counter() - started)


def summary_from_meta(out: Path, config: SynthConfig) -> SynthSummary:
    """The summary of a complete output, read back from its ``synth_meta.json``."""
    return _summary(out, config, read_json(out / META_FILE), reused=True, seconds=0.0)


# ------------------------------------------------------------------------------------------ drawing
#: One query as drawn: the pair of images and its two captions.
Captioned = tuple[Pair, CaptionPair]


def draw_queries(config: SynthConfig, items: list[Item]) -> dict[str, list[Captioned]]:
    """The triplets and captions of every category and split, by ``"<category>.<split>"`` (in that order)."""
    drawn = {}
    for category in config.categories:
        for split in SPLITS:
            members = [item for item in items if item.category == category and item.split == split]
            drawn[f"{category}.{split}"] = _draw_split(config, category, split, members)
    return drawn


def _draw_split(config: SynthConfig, category: str, split: str, members: list[Item]) -> list[Captioned]:
    per_reference = config.train_triplets_per_image if split == "train" else config.eval_triplets_per_image
    pairs = sample_pairs(members, per_reference, stream(config.seed, "triplets", category, split))
    caption_rng = stream(config.seed, "captions", category, split)
    vague_rng = stream(config.seed, "vague", category, split)  # its own stream: the captions' draws stay as they were
    vague = [draw_vague_aspect(pair.changed, config.ambiguity_level.vague_fraction, vague_rng) for pair in pairs]
    return [(pair, relative_captions(pair.reference.garment, pair.target.garment, caption_rng, vague=aspect))
            for pair, aspect in zip(pairs, vague)]


def triplet_record(pair: Pair, captions: CaptionPair) -> dict[str, Any]:
    """A query's ground truth as ``synth_meta.json`` records it: its images, changed and covered attributes."""
    return {"candidate": pair.reference.image_id, "target": pair.target.image_id, "changed": list(pair.changed),
            "covered": sorted(captions.covered, key=ATTRIBUTES.index)}


# ------------------------------------------------------------------------------------------ writing
def write_images(items: list[Item], config: SynthConfig, path_of: Callable[[Item], Path], show_progress: bool) -> None:
    """Render every item to ``path_of(item)``; an exact duplicate gets its original's bytes."""
    copied = {item.duplicate_of for item in items if item.duplicate_of}
    kept: dict[str, bytes] = {}
    made: set[Path] = set()
    for item in progress(items, desc="drawing garments", unit="img", enabled=show_progress):
        if item.duplicate_of:
            data = kept[item.duplicate_of]
        else:
            data = png_bytes(render_garment(item.garment, item.nuisance, config.size, config.supersample))
            if item.image_id in copied:
                kept[item.image_id] = data
        path = path_of(item)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(data)


def _write_split(out: Path, category: str, split: str, members: list[Item], captioned: list[Captioned]) -> None:
    """Write the split, caption and tag files of one category and split."""
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


def fashioniq_meta(config: SynthConfig, items: list[Item], drawn: dict[str, list[Captioned]]) -> dict[str, Any]:
    """``synth_meta.json`` of the FashionIQ layout: triplets by ``"<category>.<split>"`` in caption-file order."""
    triplets = {key: [triplet_record(pair, captions) for pair, captions in captioned]
                for key, captioned in drawn.items()}
    images = {key: 0 for key in triplets}
    for item in items:
        images[f"{item.category}.{item.split}"] += 1
    meta = {
        **stamp(config),
        "attributes": list(ATTRIBUTES),
        "tag_order": list(TAG_ORDER),
        "vocabulary": vocabulary(config.categories),
        "colours": colour_table(),
        "counts": {"images": images, "triplets": {key: len(records) for key, records in triplets.items()}},
        "duplicates": duplicate_groups(items),
        "images": {item.image_id: image_record(item) for item in sorted(items, key=lambda i: i.image_id)},
        "triplets": triplets,
    }
    if config.ambiguity != DEFAULT_AMBIGUITY:  # the default benchmark's records stay as they always were
        for key, records in triplets.items():
            for record, satisfying in zip(records, valid_targets(meta, key)):
                record["valid_targets"] = satisfying
    return meta


def colour_table() -> dict[str, dict[str, list[int]]]:
    """Every hue's RGB in each shade, as ``synth_meta.json`` records it."""
    return {name: {shade: list(fabric_colour(name, shade)) for shade in SHADES} for name in COLOURS}


def duplicate_groups(items: list[Item]) -> list[list[str]]:
    """Groups of ids whose image files are byte-identical (the original first), ordered by the original's id."""
    groups: dict[str, list[str]] = {}
    for item in items:
        if item.duplicate_of:
            groups.setdefault(item.duplicate_of, [item.duplicate_of]).append(item.image_id)
    return [groups[key] for key in sorted(groups)]


def image_record(item: Item) -> dict[str, Any]:
    """An image's ground truth as ``synth_meta.json`` records it (category, split, family, attributes, nuisance)."""
    record: dict[str, Any] = {"category": item.category, "split": item.split, "family": item.family,
                              "attributes": item.garment.to_dict(), "nuisance": item.nuisance.to_dict()}
    if item.duplicate_of:
        record["duplicate_of"] = item.duplicate_of
    return record


def _summary(out: Path, config: SynthConfig, meta: dict[str, Any], *, reused: bool, seconds: float) -> SynthSummary:
    splits = list(dict.fromkeys(key.split(".")[1] for key in meta["triplets"]))  # the layout's, in order
    records = [r for key in meta["triplets"] for r in meta["triplets"][key]]
    complete = sum(1 for r in records if set(r["covered"]) >= set(r["changed"]))
    changed = Counter(len(r["changed"]) for r in records)
    return SynthSummary(
        root=out, config=config, images=dict(meta["counts"]["images"]), triplets=dict(meta["counts"]["triplets"]),
        duplicates=[list(g) for g in meta["duplicates"]], complete_captions=complete / max(1, len(records)),
        reused=reused, seconds=seconds, changed_attributes=dict(sorted(changed.items())),
        ambiguity={split: sum(ambiguous_queries(meta, split).values(), AmbiguityCount(0, 0, 0)) for split in splits})
