"""Sentences built from tags: hand-written expectations for every template and tag shape."""

from __future__ import annotations

import random

import pytest

from cirlab.encoder_training.descriptions import (
    TEMPLATES,
    clean_phrases,
    describe,
    eval_description,
    join_list,
    training_description,
)

SYNTH_TAGS = ["light blue", "striped", "long sleeves", "knee length", "v-neck"]


def test_synthetic_tags_read_as_a_sentence() -> None:
    expected = "a light blue striped dress with long sleeves, knee length and v-neck"
    assert eval_description(SYNTH_TAGS, "dress") == expected


@pytest.mark.parametrize(("template", "expected"), [
    (0, "a red solid top with sleeveless and v-neck"),
    (1, "a photo of a red solid top with sleeveless and v-neck"),
    (2, "this red solid top with sleeveless and v-neck"),
    (3, "red solid top, sleeveless and v-neck"),
])
def test_every_template_uses_the_category_noun(template: int, expected: str) -> None:
    assert describe(["red", "solid", "sleeveless", "v-neck"], "toptee", template=template) == expected


def test_real_fashioniq_word_lists_yield_a_sentence() -> None:
    # Real tag files hold loose words, sometimes repeated and in mixed case; they still make a sentence.
    assert eval_description(["Floral", " print ", "floral", "maxi", ""], "dress") == "a floral print dress with maxi"


def test_few_or_no_tags() -> None:
    assert eval_description([], "shirt") == "a shirt"
    assert eval_description(["red"], "shirt") == "a red shirt"
    assert eval_description(["red", "solid"], "shirt") == "a red solid shirt"
    assert describe([], "shirt", template=3) == "shirt"


def test_clean_and_join() -> None:
    assert clean_phrases(["  Light   Blue", "light blue", "v_neck"]) == ["light blue", "v neck"]
    assert join_list([]) == "" and join_list(["a"]) == "a" and join_list(["a", "b"]) == "a and b"
    assert join_list(["a", "b", "c"]) == "a, b and c"


def test_training_descriptions_vary_but_keep_every_phrase() -> None:
    seen_templates, seen_orders = set(), set()
    for seed in range(200):
        text = training_description(SYNTH_TAGS, "dress", random.Random(seed))
        assert all(phrase in text for phrase in SYNTH_TAGS)
        assert "light blue striped dress" in text  # leading phrases stay in front of the noun
        seen_templates.add(_template_of(text))
        seen_orders.add(tuple(sorted(range(2, 5), key=lambda i: text.index(SYNTH_TAGS[i]))))
    assert seen_templates == set(range(len(TEMPLATES)))
    assert len(seen_orders) == 6  # all orders of the three trailing phrases occur


def _template_of(text: str) -> int:
    for prefix, index in (("a photo of a ", 1), ("this ", 2), ("a ", 0)):
        if text.startswith(prefix):
            return index
    return 3


def test_training_description_is_a_function_of_the_generator() -> None:
    assert (training_description(SYNTH_TAGS, "shirt", random.Random(7))
            == training_description(SYNTH_TAGS, "shirt", random.Random(7)))


def test_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError, match="template index 4"):
        describe(SYNTH_TAGS, "dress", template=4)


def test_package_exports_the_functions_not_the_modules():
    import inspect

    from cirlab.encoder_training import finetune, pretrain

    assert inspect.isfunction(pretrain) and inspect.isfunction(finetune)
