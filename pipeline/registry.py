"""A named registry: the one way plug-ins (criteria, export variants, models, data sets) are found.

Registering a name twice is an error, and an unknown name is an error that
lists the valid ones, so a typo in a config fails at once with the fix.

Example:
  >>> CRITERIA = Registry("criterion")
  >>> @CRITERIA.register("l1")
  ... def l1(analysis, context): ...
  >>> CRITERIA.get("l3")
  RegistryError: unknown criterion 'l3'; choose one of: l1
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from pipeline.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one kind, by name.

    Args:
      kind: what the items are, for messages ("criterion", "export variant").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Registers ``item`` as ``name``.

        Raises:
          RegistryError: ``name`` is already registered.
        """
        if name in self._items:
            raise RegistryError(f"{self.kind} '{name}' is already registered; pick another name")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda item: self.add(name, item)

    def get(self, name: str) -> T:
        """The item registered as ``name``.

        Raises:
          RegistryError: unknown name; the message lists the valid ones.
        """
        if name not in self._items:
            raise RegistryError(f"unknown {self.kind} '{name}'; choose one of: "
                                + ", ".join(self.names()))
        return self._items[name]

    def copy(self) -> "Registry[T]":
        """An independent copy, e.g. for a test to patch in and register into."""
        twin = Registry(self.kind)
        twin._items = dict(self._items)
        return twin

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
