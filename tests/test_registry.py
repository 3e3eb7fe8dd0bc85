import pytest

from cirlab.errors import ConfigError
from cirlab.registry import REQUIRED, Registry


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


class Base:
    """A base that is not registered itself."""

    registry_name = ""


def _widgets() -> Registry[type[Base]]:
    registry: Registry[type[Base]] = Registry("widget", inputs=("size",))

    @registry.register("knob")
    class Knob(Base):
        """A knob that turns.

        More detail that help texts leave out.
        """

        def __init__(self, size: int, turns: float = 1.5, label: str | None = None) -> None:
            self.size, self.turns, self.label = size, turns, label

    @registry.register("lever")
    class Lever(Base):
        def __init__(self, size: int, length: float, *args: int, **kwargs: int) -> None:
            self.size, self.length = size, length

    return registry


def test_registration_names_the_class_once():
    registry = _widgets()
    assert registry.get("knob").registry_name == "knob" and registry.get("lever").registry_name == "lever"
    assert Base.registry_name == ""
    other: Registry[type[Base]] = Registry("gadget")
    with pytest.raises(ValueError, match="gadget 'dial': Knob already has the registry name 'knob'"):
        other.register("dial")(registry.get("knob"))

    class Typed(Base):
        registry_name = "typed"

    with pytest.raises(ValueError, match="already has the registry name 'typed'"):
        other.register("typed")(Typed)


def test_build_passes_inputs_and_options():
    knob = _widgets().build("knob", 3, turns=2.0)
    assert (knob.size, knob.turns, knob.label) == (3, 2.0, None)


def test_build_refuses_options_that_do_not_fit_in_one_line():
    registry = _widgets()
    with pytest.raises(ConfigError, match="^widget 'knob': got an unexpected keyword argument 'colour'; "
                                          "its options are: turns, label$"):
        registry.build("knob", 3, colour="red")
    with pytest.raises(ConfigError, match="^widget 'lever': missing a required argument: 'length'; "
                                          "its options are: length$"):
        registry.build("lever", 3)
    with pytest.raises(ConfigError, match="unknown widget 'dial'; known: knob, lever"):
        registry.build("dial", 3)


def test_options_describe_and_summary():
    registry = _widgets()
    assert registry.options("knob") == {"turns": 1.5, "label": None}
    assert registry.options("lever") == {"length": REQUIRED}
    assert registry.describe("knob") == "A knob that turns"
    assert registry.describe("lever") == ""  # not the base class's docstring
    assert registry.summary() == "knob (A knob that turns), lever"
