"""Drawing one garment image with PIL, and encoding it as PNG bytes.

The garment is painted at ``supersample`` times the output size (fabric with its pattern, masked by
the silhouette; then the neckline, collar, seams and buttons) and box-filtered down, which gives
anti-aliased edges at a fraction of the cost of drawing anti-aliased shapes.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from cirlab.synth import colours
from cirlab.synth.nuisance import Nuisance
from cirlab.synth.patterns import paint_pattern
from cirlab.synth.placement import Placement
from cirlab.synth.shapes import silhouette
from cirlab.synth.vocabulary import Garment

#: Seam and edge width in garment units.
LINE_WIDTH = 0.018
BUTTON_RADIUS = 0.022


def render_garment(garment: Garment, nuisance: Nuisance, size: int, supersample: int = 2) -> Image.Image:
    """The ``size`` × ``size`` RGB image of ``garment`` photographed with ``nuisance``."""
    side = size * supersample
    shape = silhouette(garment)
    place = Placement.fit(shape, nuisance, side)
    fabric = colours.fabric_colour(garment.colour, garment.shade)
    edge = colours.outline(fabric)
    width = max(1, round(place.length(LINE_WIDTH)))

    cloth = Image.new("RGB", (side, side), fabric)
    paint_pattern(ImageDraw.Draw(cloth), garment.pattern, shape.bounds(), place, fabric, colours.ink(fabric), nuisance)
    mask = Image.new("L", (side, side), 0)
    mask_draw = ImageDraw.Draw(mask)
    for polygon in shape.fabric():
        mask_draw.polygon(place.polygon(polygon), fill=255)

    image = Image.new("RGB", (side, side), nuisance.background)
    image.paste(cloth, (0, 0), mask)
    draw = ImageDraw.Draw(image)
    for polygon in shape.fabric():
        draw.polygon(place.polygon(polygon), outline=edge, width=width)
    draw.polygon(place.polygon(shape.opening), fill=colours.inside(fabric), outline=edge, width=width)
    for piece in shape.collar:
        draw.polygon(place.polygon(piece), fill=fabric, outline=edge, width=width)
    for line in shape.lines:
        draw.line(place.polygon(line), fill=edge, width=width)
    radius = place.length(BUTTON_RADIUS)
    button = colours.ink(fabric)
    for centre in shape.buttons:
        x, y = place.point(centre)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=button, outline=edge)
    return image.reduce(supersample) if supersample > 1 else image


def png_bytes(image: Image.Image) -> bytes:
    """Encode ``image`` as PNG (deterministic: no time stamps or other varying chunks)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
