"""A registry: the entries of one kind (frameworks, converters, runtimes, models, ...) by name.

timm's habit: the modules that define things register them, and the rest of the code creates them by
name. An entry is data (a frozen dataclass with a `name`); where it points at code it does so with a
`"module:attr"` reference, which `resolve` imports only when asked, so listing a registry never imports
a framework. A lookup of an unknown name is the user's error, said in one sentence that lists the names.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from functools import reduce
from typing import Any, Generic, Protocol, TypeVar

from dlcompat.errors import ConfigError, UserError


class Named(Protocol):
    """What a registry holds: anything with a name."""

    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)


class Registry(Generic[E]):
    """The entries of one `kind`, in registration order; `builtins` are the modules that register the
    built-in ones, imported on the first lookup; an unknown name raises `error`."""

    def __init__(self, kind: str, builtins: tuple[str, ...] = (),
                 error: Callable[[str], UserError] = ConfigError) -> None:
        self.kind = kind
        self._builtins = builtins
        self._error = error
        self._entries: dict[str, E] = {}
        self._loaded = not builtins

    def register(self, entry: E) -> E:
        """Add `entry` (replacing one of the same name); returns it, so it may decorate."""
        self._entries[entry.name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Forget `name` (a test's temporary entry)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        self._load_builtins()
        return list(self._entries)

    def entries(self) -> list[E]:
        self._load_builtins()
        return list(self._entries.values())

    def get(self, name: str) -> E:
        self._load_builtins()
        if name not in self._entries:
            raise self._error(f"unknown {self.kind} {name!r}: choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(self.entries())

    def _load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # first, so a built-in module that looks a name up while registering does not recurse
        try:
            for module in self._builtins:
                importlib.import_module(module)
        except BaseException:
            self._loaded = False
            raise


def split_reference(reference: str) -> tuple[str, str]:
    """`"pkg.module:attr.sub"` -> (`"pkg.module"`, `"attr.sub"`)."""
    module, sep, attr = reference.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{reference!r} is not a 'module:attr' reference")
    return module, attr


def resolve(reference: str) -> Any:
    """The object a `"module:attr"` reference names (a dotted attr walks into the module), importing it now."""
    module, attr = split_reference(reference)
    return reduce(getattr, attr.split("."), importlib.import_module(module))


def resolve_loaded(reference: str) -> Any | None:
    """The object `reference` names if its module is already imported, else None (this imports nothing)."""
    module, _attr = split_reference(reference)
    return resolve(reference) if module in sys.modules else None
