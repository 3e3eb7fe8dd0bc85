import pytest

from cirlab.errors import ConfigError
from cirlab.synth.config import AMBIGUITY_LEVELS, PRESETS, AmbiguityLevel, SynthConfig


def test_presets():
    default, tiny = SynthConfig.preset("default"), SynthConfig.preset("tiny")
    assert (default.images_per_category, default.size) == (1200, 96)
    assert (tiny.images_per_category, tiny.size) == (40, 48)
    assert set(PRESETS) == {"default", "tiny"}
    with pytest.raises(ConfigError, match="unknown synthetic preset 'huge'"):
        SynthConfig.preset("huge")


def test_overrides_ignore_none_and_validate():
    config = SynthConfig.preset("tiny").with_overrides(seed=5, size=None, images_per_category=60)
    assert (config.seed, config.size, config.images_per_category) == (5, 48, 60)
    with pytest.raises(ConfigError, match="image size"):
        SynthConfig.preset("tiny").with_overrides(size=8)
    with pytest.raises(ConfigError, match="images per category"):
        SynthConfig.preset("tiny").with_overrides(images_per_category=5)
    with pytest.raises(ConfigError, match="images per category"):
        SynthConfig.preset("tiny").with_overrides(images_per_category=10**6)
    with pytest.raises(ConfigError, match="seed"):
        SynthConfig.preset("tiny").with_overrides(seed=-1)


@pytest.mark.parametrize("changes, message", [
    ({"categories": ("dress", "coat")}, "categories"),
    ({"split_fractions": (0.5, 0.2, 0.2)}, "split fractions"),
    ({"duplicate_fraction": 0.5}, "duplicate fraction"),
    ({"family_size": (1, 4)}, "family size"),
    ({"supersample": 5}, "supersample"),
])
def test_invalid_fields_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**changes).validated()


def test_dict_round_trip_is_json_shaped():
    config = SynthConfig.preset("tiny").with_overrides(categories=("shirt",))
    data = config.to_dict()
    assert data["categories"] == ["shirt"] and data["family_size"] == [3, 9]
    assert SynthConfig.from_dict(data) == config


def test_ambiguity_levels_and_their_record():
    assert list(AMBIGUITY_LEVELS) == ["default", "medium", "high"]
    assert AMBIGUITY_LEVELS["default"] == AmbiguityLevel(0.0, 0.0)
    assert "ambiguity" not in SynthConfig.preset("tiny").to_dict()  # recorded as before the setting existed
    high = SynthConfig.preset("tiny").with_overrides(ambiguity="high")
    assert high.to_dict()["ambiguity"] == "high" and SynthConfig.from_dict(high.to_dict()) == high
    assert high.ambiguity_level.twin_fraction > 0 and high.ambiguity_level.vague_fraction > 0
    with pytest.raises(ConfigError, match="unknown ambiguity level 'extreme'"):
        SynthConfig.preset("tiny").with_overrides(ambiguity="extreme")


def test_the_format_is_recorded_only_when_it_is_not_fashioniq():
    assert "format" not in SynthConfig.preset("tiny").to_dict()  # the default benchmark is recorded as before
    cirr = SynthConfig.preset("tiny").with_overrides(format="cirr")
    assert cirr.to_dict()["format"] == "cirr" and SynthConfig.from_dict(cirr.to_dict()) == cirr
    with pytest.raises(ConfigError, match="unknown synthetic format 'coco'; use one of \\['fashioniq', 'cirr'\\]"):
        SynthConfig.preset("tiny").with_overrides(format="coco")
