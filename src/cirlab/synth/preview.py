"""Contact sheets for looking at the synthetic benchmark: sample triplets, and every attribute value.

* :func:`write_triplet_sheet` — rows of reference → target with the two captions and the changed
  attributes, read from a generated data set;
* :func:`write_family_sheet` — rows of one family each: garments that differ in one or two
  attributes (each other's hard negatives), as drawn in the data set;
* :func:`write_attribute_sheet` — one row per attribute, the same garment drawn with each value.

Sheets are saved as palette PNGs, which keeps them small enough to live in the documentation.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cirlab.data.dataset import open_dataset
from cirlab.data.images import load_image
from cirlab.errors import DataError
from cirlab.io import atomic_path
from cirlab.synth.nuisance import Nuisance
from cirlab.synth.output import META_FILE
from cirlab.synth.render import render_garment
from cirlab.synth.vocabulary import COLOURS, NECKLINES, PATTERNS, SHADES, Garment, attribute_values

_INK = (30, 30, 30)
_GREY = (110, 110, 110)
_PAPER = (255, 255, 255)
#: A centred, unrotated, neutral photograph, so that the attribute sheet shows only the attribute.
PLAIN = Nuisance(offset_x=0.0, offset_y=0.0, scale=1.0, angle=0.0, background=(242, 242, 242),
                 pattern_phase=(0.0, 0.0), print_seed=7)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _save(sheet: Image.Image, out: str | Path) -> Path:
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            tmp, format="PNG", optimize=True)
    return out


def write_triplet_sheet(root: str | Path, out: str | Path, *, count: int = 6, split: str = "val",
                        zoom: int = 1, seed: int = 0) -> Path:
    """Draw ``count`` triplets of ``split`` (spread over the categories) from the data set at ``root``.

    Images are shown at their own size times ``zoom``.
    """
    root = Path(root)
    dataset = open_dataset(root)
    meta_path = root / META_FILE
    if not meta_path.exists():
        raise DataError(meta_path, "not found; the triplet sheet needs a data set written by 'cirlab synth'")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    triplet_meta = meta["triplets"]
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        category = dataset.categories[n % len(dataset.categories)]
        triplets = dataset.triplets(category, split)
        index = rng.randrange(len(triplets))
        record = triplet_meta[f"{category}.{split}"][index]
        rows.append((triplets[index].reference, record["target"], triplets[index].captions, record["changed"]))

    side = int(meta["config"]["size"])
    tile = side * zoom
    text_width, gap = 450, 8
    height = tile + 2 * gap
    sheet = Image.new("RGB", (2 * tile + 40 + text_width + 3 * gap, height * len(rows)), _PAPER)
    draw = ImageDraw.Draw(sheet)
    font, small = _font(13), _font(11)
    for r, (reference, target, captions, changed) in enumerate(rows):
        y = r * height + gap
        for c, image_id in enumerate((reference, target)):
            path = dataset.image_path(image_id)
            if path is None:
                raise DataError(root / "images", f"image {image_id!r} not found")
            image = load_image(path).resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(image, (gap + c * (tile + 40), y))
        mid = y + tile // 2
        draw.line([(gap + tile + 8, mid), (gap + tile + 32, mid)], fill=_INK, width=2)
        draw.polygon([(gap + tile + 32, mid - 5), (gap + tile + 38, mid), (gap + tile + 32, mid + 5)], fill=_INK)
        x = 2 * gap + 2 * tile + 40
        for number, caption in enumerate(captions[:2], start=1):  # FashionIQ's two, CIRR's one
            draw.text((x, y + 8 + 22 * (number - 1)), f"{number}: {caption.strip()}", fill=_INK, font=font)
        draw.text((x, y + 60), f"changed: {', '.join(changed)}", fill=_GREY, font=small)
        draw.text((x, y + 78), f"{reference} -> {target}", fill=_GREY, font=small)
    return _save(sheet, out)


def write_family_sheet(root: str | Path, out: str | Path, *, families: int = 4, split: str = "train",
                       columns: int = 8, seed: int = 0) -> Path:
    """Show ``families`` families of ``split`` from the data set at ``root``, one per row (``columns`` at most)."""
    root = Path(root)
    meta_path = root / META_FILE
    if not meta_path.exists():
        raise DataError(meta_path, "not found; the family sheet needs a data set written by 'cirlab synth'")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    side = int(meta["config"]["size"])
    groups: dict[tuple[str, int], list[str]] = {}
    for image_id, record in meta["images"].items():
        if record["split"] == split and "duplicate_of" not in record:
            groups.setdefault((record["category"], record["family"]), []).append(image_id)
    rng = random.Random(seed)
    if not groups:
        raise DataError(meta_path, f"no {split} images recorded")
    biggest = max(len(ids) for ids in groups.values())
    large = sorted(key for key, ids in groups.items() if len(ids) >= min(5, biggest))
    chosen = rng.sample(large, min(families, len(large)))
    label_height = 12
    sheet = Image.new("RGB", (columns * (side + 4), len(chosen) * (side + label_height + 6)), _PAPER)
    draw = ImageDraw.Draw(sheet)
    small = _font(9)
    for r, key in enumerate(chosen):
        y = r * (side + label_height + 6)
        members = sorted(groups[key])
        attrs = {i: meta["images"][i]["attributes"] for i in members}
        distance = {i: sum(attrs[i][a] != attrs[j][a] for j in members for a in attrs[i]) for i in members}
        centre = min(members, key=lambda i: distance[i])  # the member closest to all others leads the row
        ids = sorted(members, key=lambda i: (sum(attrs[i][a] != attrs[centre][a] for a in attrs[i]), i))[:columns]
        first = attrs[centre]
        for c, image_id in enumerate(ids):
            x = c * (side + 4)
            sheet.paste(load_image(root / "images" / f"{image_id}.png"), (x, y))
            attributes = meta["images"][image_id]["attributes"]
            differs = [name for name, value in attributes.items() if value != first[name]]
            label = "centre" if c == 0 else "+" + ", ".join(
                f"{attributes[d]} shade" if d == "shade" else _short(attributes[d]) for d in differs)
            draw.text((x + side // 2, y + side + 1), label[:22], fill=_GREY, font=small, anchor="ma")
    return _save(sheet, out)


def attribute_rows() -> list[tuple[str, list[tuple[str, Garment]]]]:
    """The rows of the attribute sheet: (row title, [(label, garment), ...])."""
    base = Garment("dress", "blue", "medium", "solid", "short sleeves", "knee length", "crew neck")
    shirt = Garment("shirt", "teal", "medium", "solid", "short sleeves", "hip length", "collar")
    top = Garment("toptee", "red", "medium", "solid", "short sleeves", "hip length", "crew neck")
    sleeves = [(v, g.replace("sleeves", v)) for g in (base, shirt) for v in attribute_values(g.category, "sleeves")]
    lengths = [(v, g.replace("length", v)) for g in (base, top) for v in attribute_values(g.category, "length")]
    return [
        ("category", [("dress", base), ("shirt", shirt), ("toptee", top)]),
        ("colour", [(c, base.replace("colour", c)) for c in COLOURS]),
        ("shade", [(f"{s} {c}", base.replace("colour", c).replace("shade", s))
                   for c in ("red", "green", "beige") for s in SHADES]),
        ("pattern", [(p, base.replace("pattern", p).replace("colour", "teal")) for p in PATTERNS]),
        ("sleeves", sleeves),
        ("length", lengths),
        ("neckline", [(n, g.replace("neckline", n)) for g in (base, top) for n in NECKLINES]),
    ]


def _short(label: str) -> str:
    """A value shortened to fit under a small tile ("three-quarter sleeves" → "three-quarter")."""
    for suffix in (" sleeves", " length", " neck"):
        label = label.removesuffix(suffix)
    return label


def write_attribute_sheet(out: str | Path, *, tile: int = 64, scale: int = 1) -> Path:
    """One row per attribute: the same garment drawn with every value (at ``tile`` px, enlarged ``scale`` times)."""
    rows = attribute_rows()
    shown, label_height, title_width = tile * scale, 14, 64
    columns = max(len(cells) for _, cells in rows)
    sheet = Image.new("RGB", (title_width + columns * (shown + 4), len(rows) * (shown + label_height + 6)), _PAPER)
    draw = ImageDraw.Draw(sheet)
    font, small = _font(12), _font(9)
    for r, (title, cells) in enumerate(rows):
        y = r * (shown + label_height + 6) + 2
        draw.text((4, y + shown // 2 - 6), title, fill=_INK, font=font)
        for c, (label, garment) in enumerate(cells):
            x = title_width + c * (shown + 4)
            image = render_garment(garment, PLAIN, tile, supersample=4)
            sheet.paste(image.resize((shown, shown), Image.Resampling.NEAREST) if scale > 1 else image, (x, y))
            draw.text((x + shown // 2, y + shown + 1), _short(label), fill=_GREY, font=small, anchor="ma")
    return _save(sheet, out)
