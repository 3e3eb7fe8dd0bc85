"""Sentences that describe an image from its attribute tags, for CLIP-style pretraining.

A tag file maps an image id to attribute phrases. cirlab's synthetic tags come in a fixed order
(colour, pattern, sleeves, length, neckline), e.g. ``["light blue", "striped", "long sleeves",
"knee length", "v-neck"]``; real FashionIQ tags are loose lists of words. Both yield a sentence:
the first ``leading`` phrases go before the category noun as adjectives, the rest follow "with":

    "a light blue striped dress with long sleeves, knee length and v-neck"

Training draws one of several templates per sample and shuffles the phrases after "with" (their
order carries no meaning), so the text encoder learns the words rather than one fixed string.
Evaluation always uses template 0 with the phrases in file order, so held-out retrieval compares
fixed strings.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

#: The word each FashionIQ category is called in a sentence.
CATEGORY_NOUNS: dict[str, str] = {"dress": "dress", "shirt": "shirt", "toptee": "top"}

#: Sentence templates; ``{pre}`` holds the leading phrases, ``{noun}`` the category word and
#: ``{post}`` the remaining phrases joined as a list. Index 0 is the evaluation form.
TEMPLATES: tuple[str, ...] = (
    "a {pre}{noun}{with_post}",
    "a photo of a {pre}{noun}{with_post}",
    "this {pre}{noun}{with_post}",
    "{pre}{noun}{comma_post}",
)
EVAL_TEMPLATE_INDEX = 0
DEFAULT_LEADING = 2


def clean_phrases(tags: Sequence[str]) -> list[str]:
    """Lower-case, strip and de-duplicate tag phrases, keeping their first-seen order; drop empty ones."""
    seen: set[str] = set()
    phrases: list[str] = []
    for tag in tags:
        phrase = " ".join(tag.lower().replace("_", " ").split())
        if phrase and phrase not in seen:
            seen.add(phrase)
            phrases.append(phrase)
    return phrases


def join_list(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def category_noun(category: str) -> str:
    """The noun used for ``category`` (the category name itself when it is not a FashionIQ one)."""
    return CATEGORY_NOUNS.get(category, category)


def describe(tags: Sequence[str], category: str, *, template: int = EVAL_TEMPLATE_INDEX,
             rng: random.Random | None = None, leading: int = DEFAULT_LEADING) -> str:
    """One sentence describing an image of ``category`` with attribute ``tags``.

    With ``rng`` the phrases after the noun are shuffled; without it they keep the tag order, so
    the result is a pure function of the arguments. Empty tags still give a sentence ("a dress").
    """
    if not 0 <= template < len(TEMPLATES):
        raise ValueError(f"template index {template} out of range 0..{len(TEMPLATES) - 1}")
    phrases = clean_phrases(tags)
    pre, post = phrases[:leading], phrases[leading:]
    if rng is not None:
        post = list(post)
        rng.shuffle(post)
    return TEMPLATES[template].format(
        pre="".join(f"{p} " for p in pre),
        noun=category_noun(category),
        with_post=f" with {join_list(post)}" if post else "",
        comma_post=f", {join_list(post)}" if post else "",
    )


def training_description(tags: Sequence[str], category: str, rng: random.Random,
                         leading: int = DEFAULT_LEADING) -> str:
    """A training sentence: a template drawn uniformly with ``rng`` and shuffled trailing phrases."""
    return describe(tags, category, template=rng.randrange(len(TEMPLATES)), rng=rng, leading=leading)


def eval_description(tags: Sequence[str], category: str, leading: int = DEFAULT_LEADING) -> str:
    """The fixed evaluation sentence (template 0, phrases in tag order)."""
    return describe(tags, category, leading=leading)
