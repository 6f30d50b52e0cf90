"""One small registry per plugin kind (schemes, judges): a dict filled at import, duplicates refused.

Built-in plugins are found by importing every module of their package (one new file = one new plugin,
no import list to keep); third-party packages add plugins through an entry-point group (`factory.schemes`,
`factory.judges`) whose entries point at plugin classes. Both are loaded the first time the registry is read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Generic, TypeVar

from factory.errors import BadInput, FactoryError

T = TypeVar("T", bound=type)
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str, package: str | None = None):
        self.kind = kind
        self.group = entry_point_group
        self.package = package  # the built-in plugins' package, scanned on first read
        self._items: dict[str, T] = {}
        self._loaded_entry_points = False

    def register(self, cls: T) -> T:
        """Class decorator: add a plugin under its `name`; a second plugin with the same name is an error."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise FactoryError(f"{cls.__qualname__} has no `name`; every {self.kind} declares one")
        if name in self._items and self._items[name] is not cls:
            other = self._items[name]
            raise FactoryError(f"two {self.kind}s named {name!r}: {other.__module__}.{other.__qualname__} "
                               f"and {cls.__module__}.{cls.__qualname__}")
        self._items[name] = cls
        return cls

    def _load_plugins(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        if self.package is not None:
            self._scan(self.package)
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                self.register(ep.load())
            except FactoryError:
                raise
            except Exception as exc:  # a broken third-party plugin must not break the CLI
                log.warning("could not load %s plugin %s: %s", self.kind, ep.name, exc)

    @staticmethod
    def _scan(package: str) -> None:
        """Import every public module and sub-package of `package`; plugin classes register on import."""
        import importlib
        import pkgutil

        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")

    def get(self, name: str) -> T:
        self._load_plugins()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none installed"
            raise BadInput(f"unknown {self.kind} {name!r} (known: {known})")
        return self._items[name]

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items
