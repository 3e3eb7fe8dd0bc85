import random

from cirlab.data.captions import CAPTION_FORMS, EVAL_FORM_INDEX, caption_variants, clean, eval_caption, training_caption


def test_variants_follow_the_clip4cir_forms():
    # as in CLIP4Cir, only the leading caption is capitalised; the second keeps its own case
    variants = caption_variants(["is red.", " Has Long sleeves? "])
    assert variants == ("Is red and Has Long sleeves", "Has long sleeves and is red", "Is red", "Has long sleeves")
    assert len(variants) == len(CAPTION_FORMS)


def test_eval_caption_is_first_form():
    pair = ["is shinier,", "has a belt"]
    assert eval_caption(pair) == "Is shinier and has a belt" == caption_variants(pair)[EVAL_FORM_INDEX]


def test_clean_strips_only_the_listed_characters_at_the_ends():
    assert clean(" .,?is red, really?. ") == "is red, really"
    assert clean("is red!") == "is red!"


def test_empty_caption_is_kept_as_the_reference_builds_it():
    assert caption_variants(["", "is grey with a design on the back"]) == (
        " and is grey with a design on the back", "Is grey with a design on the back and ",
        "", "Is grey with a design on the back")


def test_training_forms_are_uniform():
    rng = random.Random(0)
    pair = ["a", "b"]
    counts = dict.fromkeys(caption_variants(pair), 0)
    draws = 20000
    for _ in range(draws):
        counts[training_caption(pair, rng)] += 1
    for count in counts.values():
        assert abs(count / draws - 0.25) < 0.015


def test_real_captions_need_stripping(real_fashioniq):
    from cirlab.data import FashionIQ

    triplets = FashionIQ(real_fashioniq).triplets("dress", "val")
    raw_untidy = sum(1 for t in triplets for c in t.captions if c != c.strip(".?, "))
    assert raw_untidy > 0
    for t in triplets:
        for caption, single_form in zip(t.captions, caption_variants(t.captions)[2:]):
            if clean(caption):
                assert single_form[-1] not in ".?, " and single_form[0] not in ".?, "
                assert single_form[0] == single_form[0].upper()
