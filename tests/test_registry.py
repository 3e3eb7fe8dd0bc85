import pytest

from cirlab.errors import ConfigError
from cirlab.registry import Registry


def test_register_get_and_list():
    registry: Registry[type] = Registry("widget")

    @registry.register("b")
    class B: ...

    registry.register("a")(int)
    assert registry.get("b") is B and registry.names() == ["a", "b"] and "a" in registry


def test_duplicates_are_refused_and_unknown_names_listed():
    registry: Registry[int] = Registry("widget")
    registry.register("one")(1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("one")(2)
    with pytest.raises(ConfigError, match="unknown widget 'two'; known: one"):
        registry.get("two")
