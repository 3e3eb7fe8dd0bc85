import pytest

from cirlab.data.layout import CATEGORIES
from cirlab.synth.vocabulary import (
    ATTRIBUTES,
    COLOURS,
    NECKLINES,
    PATTERNS,
    SHADES,
    SLEEVE_ORDER,
    Garment,
    attribute_values,
    colour_phrase,
    combinations,
    vocabulary,
)

DRESS = Garment("dress", "blue", "light", "striped", "long sleeves", "knee length", "v-neck")


def test_vocabulary_sizes_meet_the_design():
    assert len(COLOURS) >= 12
    assert SHADES == ("light", "medium", "dark")
    assert set(PATTERNS) == {"solid", "striped", "polka dot", "checked", "floral"}
    assert {"crew neck", "v-neck", "collar"} <= set(NECKLINES)
    for category in CATEGORIES:
        assert len(attribute_values(category, "sleeves")) == 3
        assert len(attribute_values(category, "length")) == 3


def test_sleeve_values_follow_the_global_order():
    for category in CATEGORIES:
        values = attribute_values(category, "sleeves")
        assert list(values) == sorted(values, key=SLEEVE_ORDER.index)


def test_combinations_is_the_product_of_value_counts():
    expected = 13 * 3 * 5 * 3 * 3 * 5
    assert combinations("dress") == expected == combinations("shirt") == combinations("toptee")


def test_tags_are_five_phrases_in_fixed_order():
    assert DRESS.tags() == ["light blue", "striped", "long sleeves", "knee length", "v-neck"]
    assert DRESS.replace("shade", "medium").tags()[0] == "blue"
    assert colour_phrase("red", "dark") == "dark red"


def test_differences_codes_and_round_trip():
    other = DRESS.replace("colour", "red").replace("neckline", "collar")
    assert DRESS.differences(other) == ["colour", "neckline"]
    assert DRESS.differences(DRESS) == []
    codes = DRESS.codes()
    assert [attribute_values("dress", a)[c] for a, c in zip(ATTRIBUTES, codes)] == list(DRESS.values())
    assert Garment.from_dict("dress", DRESS.to_dict()) == DRESS


def test_vocabulary_is_json_ready_and_unknown_attribute_fails():
    vocab = vocabulary(("dress", "shirt"))
    assert vocab["shirt"]["sleeves"] == ["short sleeves", "three-quarter sleeves", "long sleeves"]
    assert vocab["dress"]["length"] == ["mini length", "knee length", "maxi length"]
    with pytest.raises(KeyError):
        attribute_values("dress", "fabric")
