import random
import re

import pytest

from cirlab.synth.captions import ASPECTS, _ordinal_covers, draw_vague_aspect, relative_captions, vague_clauses
from cirlab.synth.catalogue import mutate, random_garment
from cirlab.synth.vocabulary import SHADES, Garment

BASE = Garment("dress", "blue", "medium", "solid", "short sleeves", "knee length", "crew neck")

#: Words that show a caption talks about an aspect.
LEXICON = {
    "colour": r"\b(red|orange|yellow|green|teal|turquoise|blue|purple|magenta|pink|brown|grey|beige|darker|lighter|"
              r"paler|deeper|colou?r|shade)\b",
    "pattern": r"(stripe|dot|check|plaid|gingham|floral|flower|solid|plain|pattern|print|busier)",
    "sleeves": r"sleeve",
    "length": r"(length|long|short|mini|maxi|knee|floor|crop|tunic)",
    "neckline": r"(neck|collar)",
}


def _pairs(count, seed=0):
    rng = random.Random(seed)
    for _ in range(count):
        category = rng.choice(["dress", "shirt", "toptee"])
        reference = random_garment(category, rng)
        target = mutate(mutate(reference, rng), rng) if rng.random() < 0.4 else mutate(reference, rng)
        if 1 <= len(reference.differences(target)) <= 3:
            yield reference, target


def test_captions_are_lower_case_non_empty_and_annotator_shaped():
    rng = random.Random(0)
    endings = set()
    for reference, target in _pairs(600):
        pair = relative_captions(reference, target, rng)
        for caption in pair.captions:
            assert caption.strip() and caption == caption.lower()
            assert not caption.startswith(" ")
            endings.add(caption[-1])
        assert pair.changed == tuple(reference.differences(target))
        assert pair.covered <= set(pair.changed)
    assert {".", " "} <= endings  # some end in punctuation or spaces, like the real files


def test_single_aspect_changes_are_mentioned_by_both_captions():
    rng = random.Random(1)
    for attribute, value in [("pattern", "striped"), ("sleeves", "long sleeves"), ("length", "maxi length"),
                             ("neckline", "v-neck"), ("colour", "red"), ("shade", "dark")]:
        target = BASE.replace(attribute, value)
        aspect = "colour" if attribute == "shade" else attribute
        for _ in range(30):
            pair = relative_captions(BASE, target, rng)
            for caption in pair.captions:
                assert re.search(LEXICON[aspect], caption), (attribute, caption)


def test_unchanged_aspects_are_only_restated_with_still():
    rng = random.Random(2)
    target = BASE.replace("pattern", "floral")
    for _ in range(200):
        for caption in relative_captions(BASE, target, rng).captions:
            if "still" not in caption:
                assert not re.search(LEXICON["sleeves"], caption) and not re.search(r"neck|collar", caption)


def test_captions_usually_cover_the_change_and_often_split_it():
    rng = random.Random(3)
    complete = partial_caption = multi = 0
    pairs = list(_pairs(800, seed=4))
    for reference, target in pairs:
        pair = relative_captions(reference, target, rng)
        complete += pair.complete
        aspects = [a for a in ASPECTS if set(a) & set(pair.changed)]
        if len(aspects) >= 2:
            multi += 1
            mentions = [sum(bool(re.search(LEXICON[a[0]], c)) for a in aspects) for c in pair.captions]
            partial_caption += min(mentions) < len(aspects)
    assert complete / len(pairs) > 0.75
    assert partial_caption / multi > 0.5  # one caption alone usually does not tell the whole change


def test_relative_phrases_cover_only_when_they_pin_the_value():
    assert _ordinal_covers(SHADES, "medium", "dark", much=False)
    assert not _ordinal_covers(SHADES, "light", "dark", much=False)  # medium is darker too
    assert _ordinal_covers(SHADES, "light", "dark", much=True)
    assert _ordinal_covers(SHADES, "medium", "light", much=False)
    rng = random.Random(5)
    lighter = BASE.replace("shade", "light")
    for _ in range(50):
        pair = relative_captions(BASE.replace("shade", "dark"), lighter, rng)
        if all(re.search(r"lighter|paler", c) and "much" not in c and "light blue" not in c for c in pair.captions):
            assert pair.covered == frozenset()


def test_same_attributes_are_refused_and_output_is_deterministic():
    with pytest.raises(ValueError):
        relative_captions(BASE, BASE, random.Random(0))
    target = BASE.replace("colour", "red").replace("sleeves", "long sleeves")
    assert relative_captions(BASE, target, random.Random(9)) == relative_captions(BASE, target, random.Random(9))


def test_a_vague_aspect_is_mentioned_without_its_new_value():
    rng = random.Random(11)
    mentioned = 0
    pairs = list(_pairs(400, seed=12))
    for reference, target in pairs:
        changed = tuple(reference.differences(target))
        aspect = draw_vague_aspect(changed, 1.0, rng)
        pair = relative_captions(reference, target, rng, vague=aspect)
        assert not pair.covered & set(aspect)
        mentioned += any(re.search(LEXICON[aspect[0]], c) for c in pair.captions)
    assert mentioned / len(pairs) > 0.9  # named (not left out), only its new value is not given


def test_vague_clauses_cover_nothing_and_need_a_changed_aspect():
    target = BASE.replace("colour", "red").replace("pattern", "striped")
    for aspect in (("colour", "shade"), ("pattern",)):
        assert all(not clause.covers for clause in vague_clauses(aspect, BASE, target))
    texts = {clause.text for clause in vague_clauses(("colour", "shade"), BASE, target)}
    assert "a different color" in texts
    darker = vague_clauses(("colour", "shade"), BASE, BASE.replace("shade", "dark"))
    assert "a different shade" in {clause.text for clause in darker}
    with pytest.raises(ValueError, match="did not change"):
        relative_captions(BASE, target, random.Random(0), vague=("sleeves",))
    assert draw_vague_aspect(("colour",), 0.0, random.Random(0)) is None
    assert relative_captions(BASE, target, random.Random(4), vague=None) == relative_captions(BASE, target,
                                                                                               random.Random(4))
