"""Settings dataclasses read from YAML plus overrides, with one-line errors naming the file, line and key.

Any command can describe its settings as a dataclass and read them with :func:`load_dataclass`: a YAML
file first, then overrides, in order: ``(key, value)`` pairs (command-line flags) and ``"key=value"``
strings (``--set``, the value read as YAML). A dotted key such as ``loss_options.margin`` sets one entry
of a mapping field. Every value is checked against the field's type hint and converted where the
reading is unambiguous (``2e-5`` to a float, ``"dress,shirt"`` to a list). A problem is one
:class:`~cirlab.errors.ConfigError` line that names the file and line (or the override), the key, and,
for an unknown key, the closest known one.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cirlab.errors import ConfigError

T = TypeVar("T")

#: Overrides as :func:`load_dataclass` takes them: a mapping, or a sequence of pairs and ``key=value`` strings.
Overrides = Mapping[str, Any] | Sequence[str | tuple[str, Any]]


@dataclass(frozen=True)
class Override:
    """One override: a (possibly dotted) key, its value, and where it came from, for messages."""

    key: str
    value: Any
    source: str  # "option lr" for a flag, "--set lr=0.1" for a --set string

    @property
    def field(self) -> str:
        """The dataclass field it changes (the part of the key before the first dot)."""
        return self.key.partition(".")[0]


def load_dataclass(cls: type[T], path: str | Path | None = None, overrides: Overrides | None = None) -> T:
    """An instance of the dataclass ``cls`` from a YAML file (or none) plus ``overrides``, keys and types checked."""
    values = read_yaml(path, cls) if path is not None else {}
    values = apply_overrides(cls, values, parse_overrides(overrides))
    return from_dict(cls, values, source=str(path) if path is not None else "overrides")


def read_yaml(path: str | Path, cls: type | None = None) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path``; with ``cls``, its keys and value types checked
    against that dataclass, each problem reported with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable config file ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}: a config file must hold a mapping of config keys at the top level")
    if cls is not None:
        lines = {key_node.value: key_node.start_mark.line + 1 for key_node, _ in node.value}
        from_dict(cls, data, source=str(path), lines=lines)
    return dict(data)


def parse_overrides(overrides: Overrides | None) -> list[Override]:
    """``overrides`` as :class:`Override` records, ``key=value`` strings split and their values read as YAML."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [Override(key, value, f"option {key}") for key, value in overrides.items()]
    items = []
    for entry in overrides:
        if isinstance(entry, tuple):
            key, value = entry
            items.append(Override(key, value, f"option {key}"))
            continue
        text = str(entry)
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {text!r}: expected key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        items.append(Override(key.strip(), value, f"--set {text}"))
    return items


def apply_overrides(cls: type, values: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of ``values`` with ``overrides`` applied in order; unknown fields of ``cls`` are refused."""
    result = dict(values)
    keys = field_names(cls)
    for item in overrides:
        top, _, sub = item.key.partition(".")
        if top not in keys:
            raise ConfigError(f"{item.source}: unknown config key {top!r}{suggest(top, keys)}")
        if not sub:
            result[top] = item.value
            continue
        current = result.get(top)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise ConfigError(f"{item.source}: config key {top!r} is not a mapping, so {item.key!r} cannot be set")
        result[top] = {**current, sub: item.value}
    return result


def from_dict(cls: type[T], values: Mapping[str, Any], source: str = "config",
              lines: Mapping[str, int] | None = None) -> T:
    """An instance of the dataclass ``cls`` from a mapping, checking keys and converting value types."""
    hints = typing.get_type_hints(cls)
    keys = field_names(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{source}:{lines[key]}" if lines and key in lines else source
        if key not in keys:
            raise ConfigError(f"{where}: unknown config key {key!r}{suggest(key, keys)}")
        try:
            kwargs[key] = coerce(value, hints[key])
        except TypeError as exc:
            raise ConfigError(f"{where}: config key {key!r}: {exc}") from None
    return cls(**kwargs)


def field_names(cls: type) -> list[str]:
    """The field names of the dataclass ``cls``, in order."""
    return [f.name for f in dataclasses.fields(cls)]


def field_default(cls: type, name: str) -> Any:
    """The default value of field ``name`` of the dataclass ``cls`` (its factory's value if it has one)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def suggest(key: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``key``, or nothing."""
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` as type ``hint`` or raise TypeError saying what was expected.

    Hand-written rather than a validation library because the few types of settings dataclasses
    need only this, and YAML 1.1 quirks (``2e-5`` read as a string) need a numeric reading anyway.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option)
            except TypeError as exc:
                errors.append(str(exc))
        raise TypeError(" or ".join(errors))
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise TypeError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, Path)):
            return str(value)
        raise TypeError(f"expected a string, got {value!r}")
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if isinstance(value, str) and item_hint is str:
            return [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {value!r}")
        return [coerce(item, item_hint) for item in value]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    raise TypeError(f"unsupported config type {hint!r}")
