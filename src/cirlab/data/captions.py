"""Caption forms as the field builds them from FashionIQ's two relative captions.

Following CLIP4Cir (Baldrati et al.), each caption is stripped of the characters ``.?,`` and spaces at
both ends and capitalised with :meth:`str.capitalize` (first letter upper case, the rest lower case).
Training draws one of four forms with probability 1/4 each; evaluation always uses the first form:

=====  ====================  ================================
index  name                  text
=====  ====================  ================================
0      ``c1_and_c2``         "C1 and c2"  (also the evaluation form)
1      ``c2_and_c1``         "C2 and c1"
2      ``c1``                "C1"
3      ``c2``                "C2"
=====  ====================  ================================

An empty caption (FashionIQ has 16) is kept: its forms are built exactly as for any other caption,
so "C1 and c2" with an empty c1 reads " and c2", which is what the reference protocol encodes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

CAPTION_FORMS: tuple[str, ...] = ("c1_and_c2", "c2_and_c1", "c1", "c2")
EVAL_FORM_INDEX = 0
_STRIP = ".?, "


def clean(caption: str) -> str:
    """Strip ``.?,`` and spaces at both ends (no capitalisation)."""
    return caption.strip(_STRIP)


def caption_variants(captions: Sequence[str]) -> tuple[str, str, str, str]:
    """All four training forms of a caption pair, in :data:`CAPTION_FORMS` order."""
    first, second = clean(captions[0]), clean(captions[1])
    return (
        f"{first.capitalize()} and {second}",
        f"{second.capitalize()} and {first}",
        first.capitalize(),
        second.capitalize(),
    )


def eval_caption(captions: Sequence[str]) -> str:
    """The fixed evaluation form, "C1 and c2"."""
    return caption_variants(captions)[EVAL_FORM_INDEX]


def sample_form_index(rng: random.Random) -> int:
    """Draw a training form index, each of the four with probability 1/4."""
    return rng.randrange(len(CAPTION_FORMS))


def training_caption(captions: Sequence[str], rng: random.Random) -> str:
    """One training form of a caption pair drawn with ``rng``."""
    return caption_variants(captions)[sample_form_index(rng)]
