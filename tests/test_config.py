"""Settings dataclasses from YAML plus overrides: any dataclass, the same checks and one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cirlab.config import (
    Override,
    apply_overrides,
    coerce,
    field_default,
    load_dataclass,
    parse_overrides,
    read_yaml,
)
from cirlab.errors import ConfigError


@dataclass
class Settings:
    name: str = "x"
    size: int = 3
    rate: float = 0.5
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    flag: bool = False


def write(tmp_path, text: str):
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_then_flags_then_set_strings_in_order(tmp_path):
    path = write(tmp_path, "name: a\nsize: 4\noptions: {k: 1}\n")
    settings = load_dataclass(Settings, path, [("size", 5), "size=6", "options.j=two", ("tags", "p, q")])
    assert settings == Settings(name="a", size=6, tags=["p", "q"], options={"k": 1, "j": "two"})


def test_values_are_read_as_the_field_types():
    settings = load_dataclass(Settings, None, {"rate": "2e-5", "size": 4.0, "limit": None, "tags": ("a",)})
    assert (settings.rate, settings.size, settings.limit, settings.tags) == (2e-5, 4, None, ["a"])
    with pytest.raises(TypeError, match="expected true or false"):
        coerce("yes", bool)


def test_errors_name_the_file_line_and_closest_key(tmp_path):
    with pytest.raises(ConfigError, match=r"settings\.yaml:2: unknown config key 'sise' \(did you mean 'size'\?\)"):
        load_dataclass(Settings, write(tmp_path, "name: a\nsise: 4\n"))
    with pytest.raises(ConfigError, match=r"settings\.yaml:3: config key 'size': expected an integer, got 'big'"):
        read_yaml(write(tmp_path, "name: a\n\nsize: big\n"), Settings)
    with pytest.raises(ConfigError, match=r"settings\.yaml:2: invalid YAML"):
        load_dataclass(Settings, write(tmp_path, "name: a\nsize: : x\nrate: 2\n"))
    with pytest.raises(ConfigError, match=r"--set flg=1: unknown config key 'flg' \(did you mean 'flag'\?\)"):
        load_dataclass(Settings, None, ["flg=1"])
    with pytest.raises(ConfigError, match=r"config key 'name' is not a mapping, so 'name.x' cannot be set"):
        load_dataclass(Settings, write(tmp_path, "name: a\n"), ["name.x=1"])


def test_overrides_keep_their_source_for_messages():
    assert parse_overrides(["a.b=[1, 2]", ("c", 3)]) == [Override("a.b", [1, 2], "--set a.b=[1, 2]"),
                                                         Override("c", 3, "option c")]
    assert parse_overrides(["a.b=1"])[0].field == "a"
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["size"])
    assert apply_overrides(Settings, {"size": 1}, []) == {"size": 1}


def test_field_default_reads_plain_and_factory_defaults():
    assert field_default(Settings, "size") == 3 and field_default(Settings, "tags") == []
    with pytest.raises(KeyError):
        field_default(Settings, "absent")
