"""Name → factory registries, the way components are chosen from configs and the command line.

A registry refuses duplicate names so that two plug-ins cannot silently shadow each other, and an
unknown name raises a :class:`~cirlab.errors.ConfigError` listing the known ones. It is also the one
place that checks a plug-in's options (:meth:`Registry.build`) and describes its entries for help texts
(:meth:`Registry.describe`, :meth:`Registry.options`, :meth:`Registry.summary`), so that neither is
retyped by the commands.

A registered class learns its name from the registration (``cls.registry_name``): the name is written
once, in the decorator, and read back from there by messages and saved configs::

    @SAMPLERS.register("hard")
    class HardSampler(GallerySampler): ...

    HardSampler.registry_name          # "hard"
    SAMPLERS.build("hard", gallery, top_m=32)
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from cirlab.errors import ConfigError

T = TypeVar("T")


class _Required:
    """Marks an option without a default in :meth:`Registry.options`."""

    def __repr__(self) -> str:
        return "<required>"


#: The "default" of an option that has none (it must be given).
REQUIRED: Any = _Required()


class Registry(Generic[T]):
    """A named collection of factories of one kind (combiners, losses, negative samplers...).

    Args:
        kind: what the entries are, for messages (``"negative sampler"``).
        inputs: names of the leading arguments every factory takes before its options (a sampler's
            ``gallery``, a combiner's ``dim``); they are not listed among the options.
    """

    def __init__(self, kind: str, inputs: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.inputs = inputs
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; a second registration of a name fails.

        A class also gets ``registry_name = name`` (built-in types excepted); a class that already carries
        its own ``registry_name`` (registered elsewhere, or typed by hand) is refused, so that the name
        has one source.
        """

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if isinstance(obj, type):
                if "registry_name" in vars(obj):
                    raise ValueError(f"{self.kind} {name!r}: {obj.__name__} already has the registry name "
                                     f"{vars(obj)['registry_name']!r}")
                with contextlib.suppress(TypeError):  # built-in types cannot carry it
                    obj.registry_name = name  # type: ignore[attr-defined]
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """Return the entry registered as ``name``."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered as ``name`` with ``args`` (its inputs) and ``kwargs`` (its options).

        Arguments that do not fit the factory's signature raise a one-line ConfigError naming the kind,
        the entry, the problem and the options the entry accepts, before anything is built.
        """
        factory: Any = self.get(name)
        try:
            inspect.signature(factory).bind(*args, **kwargs)
        except TypeError as error:
            known = ", ".join(self.options(name)) or "none"
            raise ConfigError(f"{self.kind} {name!r}: {error}; its options are: {known}") from None
        return factory(*args, **kwargs)

    def options(self, name: str) -> dict[str, Any]:
        """The options of entry ``name`` (its keyword parameters after the inputs) → default, in signature order.

        An option without a default maps to :data:`REQUIRED`.
        """
        parameters = inspect.signature(self.get(name)).parameters.values()  # type: ignore[arg-type]
        return {p.name: REQUIRED if p.default is inspect.Parameter.empty else p.default for p in parameters
                if p.name not in self.inputs and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def describe(self, name: str) -> str:
        """One line describing entry ``name``: the first line of its own docstring, without the final period.

        An entry without a docstring of its own (a base class's does not count) gives ``""``.
        """
        doc = inspect.cleandoc(getattr(self.get(name), "__doc__", None) or "")
        return doc.split("\n", 1)[0].strip().rstrip(".")

    def summary(self) -> str:
        """Every entry with its description, for help texts: ``"a (does this), b (does that)"``."""
        described = ((name, self.describe(name)) for name in self.names())
        return ", ".join(f"{name} ({text})" if text else name for name, text in described)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
